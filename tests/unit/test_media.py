"""media.py on real files made here: exact AAC round trips, variable frame rate, and every kind of bad input."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mova_eval import media
from mova_eval.errors import (
    EmptyMediaError,
    InvalidAudioError,
    MediaError,
    MediaLimitError,
    MissingStreamError,
    UnreadableMediaError,
)
from mova_eval.media import AudioPreset, MediaLimits, VideoPreset

SR = 16000


def _frames(n=24, h=64, w=64, seed=0) -> np.ndarray:
    """Frames whose mean brightness encodes their index (robust to lossy coding)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 40, (h, w, 3))
    return np.stack([np.clip(base + 8 * i, 0, 255) for i in range(n)]).astype(np.uint8)


def _clicks(n: int, at: list[int], sr: int = SR) -> np.ndarray:
    x = np.zeros(n, np.float32)
    t = np.arange(int(0.05 * sr)) / sr
    for s in at:
        k = min(len(t), n - s)
        x[s : s + k] = (0.5 * np.sin(2 * np.pi * 1000 * t[:k] + np.pi / 2) * np.exp(-t[:k] / 0.01))
    return x


def _onsets(x: np.ndarray, thr: float = 0.2) -> list[int]:
    above = np.abs(x) > thr
    starts = np.flatnonzero(above & ~np.concatenate([[False], above[:-1]]))
    out: list[int] = []
    for s in starts:
        if not out or s - out[-1] > 2000:  # one onset per click, however it rings
            out.append(int(s))
    return out


# ----------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("sr,channels,n", [(16000, 1, 64123), (48000, 2, 48000 * 2 + 517)])
def test_aac_round_trip_keeps_sample_count_and_alignment(tmp_path, sr, channels, n):
    at = [int(0.3 * sr), int(1.1 * sr) + 7, n - int(0.2 * sr)]
    mono = _clicks(n, at, sr)
    audio = np.stack([mono * (1.0 - 0.4 * c) for c in range(channels)])
    path = media.encode(tmp_path / "c.mp4", _frames(48), 24, audio, sr)
    clip = media.decode(path)
    assert clip.sample_rate == sr
    assert clip.audio.shape == (channels, n), "AAC priming or padding left in the decoded track"
    assert _onsets(clip.audio[0]) == _onsets(mono)  # same sample positions, not one off
    lag = np.argmax(np.correlate(clip.audio[0, : sr // 2 + 4000], mono[: sr // 2], mode="valid"))
    assert lag == 0
    err = clip.audio - audio
    assert 10 * np.log10(np.sum(audio**2) / np.sum(err**2)) > 20  # the same signal, not just the same length


def test_lossless_round_trip_is_exact(tmp_path):
    frames = _frames(12)
    audio = np.round(_clicks(SR, [4000]) * 32767) / 32767
    clip = media.decode(media.encode(tmp_path / "c.mkv", frames, 24, audio, SR, lossless=True))
    np.testing.assert_array_equal(clip.video, frames)
    np.testing.assert_allclose(clip.audio[0], audio, atol=1 / 32767)
    assert clip.fps == 24 and clip.duration == pytest.approx(1.0)


def test_encode_is_byte_deterministic(tmp_path):
    frames, audio = _frames(24), _clicks(SR, [5000])
    a = media.encode(tmp_path / "a.mp4", frames, 24, audio, SR).read_bytes()
    b = media.encode(tmp_path / "b.mp4", frames, 24, audio, SR).read_bytes()
    assert a == b


def test_audio_starting_after_video_is_preceded_by_silence(tmp_path):
    """An audio stream whose first packet is 0.25 s after the video's start keeps that offset in the Clip."""
    path = tmp_path / "late.mkv"
    audio = _clicks(SR, [1000])
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264rgb", rate=24)
        vs.width = vs.height = 64
        vs.pix_fmt = "rgb24"
        as_ = out.add_stream("pcm_s16le", rate=SR)
        as_.layout = "mono"
        for i, img in enumerate(_frames(24)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        for start in range(0, SR, 1000):
            f = av.AudioFrame.from_ndarray((audio[None, start : start + 1000] * 32767).astype(np.int16),
                                           format="s16", layout="mono")
            f.sample_rate, f.time_base, f.pts = SR, Fraction(1, SR), start + SR // 4
            for p in as_.encode(f):
                out.mux(p)
        for p in as_.encode(None):
            out.mux(p)
    clip = media.decode(path)
    assert _onsets(clip.audio[0]) == [1000 + SR // 4]
    assert np.all(clip.audio[0, : SR // 4] == 0)


# ----------------------------------------------------------------------------------------------- frame rate


def _write_vfr(path: Path, pts_ms: list[int]) -> None:
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        vs.time_base = Fraction(1, 1000)
        vs.codec_context.time_base = Fraction(1, 1000)
        vs.options = {"crf": "10", "bf": "0"}
        for i, t in enumerate(pts_ms):
            f = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 10 + 20 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)


def test_variable_frame_rate_is_resampled_onto_a_constant_grid(tmp_path):
    # 10 frames, shown for 40, 40, 120, 40, 40, 40, 200, 40, 40, 40 ms
    pts = [0, 40, 80, 200, 240, 280, 320, 520, 560, 600]
    path = tmp_path / "vfr.mp4"
    _write_vfr(path, pts)
    clip = media.decode(path)
    fps = clip.fps
    probe_fps = media.probe(path)["fps"]
    assert fps == pytest.approx(probe_fps)  # the stream's average rate
    shown = np.round((clip.video.reshape(len(clip.video), -1).mean(axis=1) - 10) / 20).astype(int)
    # worked by hand: the stream's average rate is 15.79 fps, a grid of 0, 63.3, 126.7, 190, 253.3, 316.7, 380,
    # 443.3, 506.7, 570 ms; at each grid time the frame on screen is the last one whose pts is not later:
    # 0→#0, 63.3→#1 (40), 126.7→#2 (80), 190→#2, 253.3→#4 (240), 316.7→#5 (280), 380…506.7→#6 (320), 570→#8 (560)
    assert 15.7 < fps < 15.8
    assert shown.tolist() == [0, 1, 2, 2, 4, 5, 6, 6, 6, 8]
    assert len(shown) == int(round(600 / 1000 * fps)) + 1
    assert len(set(shown.tolist())) < 10 < len(shown) + 1  # at the average rate, short frames are dropped


def test_constant_frame_rate_is_returned_frame_for_frame(tmp_path):
    frames = _frames(30)
    clip = media.decode(media.encode(tmp_path / "c.mp4", frames, 30, None, None))
    assert clip.video.shape[0] == 30 and clip.fps == 30
    means = clip.video.reshape(30, -1).mean(axis=1)
    assert np.all(np.diff(means) > 4)  # frames in order, none repeated or dropped


def _write(path: Path, vcodec: str, acodec: str | None, audio: np.ndarray | None, sr: int, *, rate=24,
           pts_step: int = 1, time_base: Fraction | None = None, n_frames: int = 24) -> None:
    """A clip written with any codec pair PyAV offers (for containers media.encode does not produce).
    Both streams are added before the first packet is muxed (adding one later crashes FFmpeg)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream(vcodec, rate=rate)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        a = None
        if acodec is not None:
            a = out.add_stream(acodec, rate=sr)
            a.layout = "mono"
        for i, img in enumerate(_frames(n_frames)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i * pts_step
            if time_base is not None:
                f.time_base = time_base
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if a is None:
            return
        size, fmt = a.codec_context.frame_size or 1024, a.codec_context.format.name
        for st in range(0, len(audio), size):
            block = audio[None, st : st + size]
            data = (block * 32767).astype(np.int16) if fmt.startswith("s16") else np.ascontiguousarray(block)
            f = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            f.sample_rate, f.pts, f.time_base = sr, st, Fraction(1, sr)
            for p in a.encode(f):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)


@pytest.mark.parametrize("name,vcodec,acodec,sr", [("c.webm", "libvpx-vp9", "libopus", 48000),
                                                   ("c.avi", "mpeg4", "pcm_s16le", 44100)])
def test_other_containers_keep_samples_and_alignment(tmp_path, name, vcodec, acodec, sr):
    n = 2 * sr + 333
    audio = _clicks(n, [sr // 4, sr + 17], sr)
    path = tmp_path / name
    try:
        _write(path, vcodec, acodec, audio, sr)
    except (av.error.FFmpegError, ValueError) as e:  # a PyAV build without that encoder
        pytest.skip(f"cannot write {name} here: {e}")
    clip = media.decode(path)
    assert clip.audio.shape == (1, n) and clip.fps == 24 and clip.video.shape[0] == 24
    assert _onsets(clip.audio[0]) == _onsets(audio)


def test_mislabelled_frame_rate_falls_back_to_timestamps(tmp_path):
    """A stream that declares 1000 fps (its time base) but has a frame every 40 ms is a 25 fps clip."""
    path = tmp_path / "mislabelled.mkv"
    _write(path, "libx264", None, None, 0, rate=1000, pts_step=40, time_base=Fraction(1, 1000), n_frames=25)
    assert media.probe(path)["fps"] == 1000
    clip = media.decode(path)
    assert clip.fps == pytest.approx(25.0) and clip.video.shape[0] == 25


def test_constant_rate_indices_rules():
    assert media.constant_rate_indices([0.0, 0.04, 0.08], 25) is None
    assert media.constant_rate_indices([None, None], 25) is None
    idx = media.constant_rate_indices([0.0, 0.1, 0.15], 20)
    assert idx.tolist() == [0, 0, 1, 2]


# ----------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def good_mp4(tmp_path) -> Path:
    return media.encode(tmp_path / "good.mp4", _frames(48), 24, _clicks(2 * SR, [4000]), SR)


def test_missing_empty_and_garbage_files(tmp_path):
    with pytest.raises(UnreadableMediaError, match="does not exist"):
        media.decode(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableMediaError, match="empty"):
        media.decode(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableMediaError) as e:
        media.decode(junk)
    assert str(junk) in str(e.value)


def _atoms(data: bytes) -> dict[bytes, tuple[int, int]]:
    out, i = {}, 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        out[data[i + 4 : i + 8]] = (i, size)
        i += max(size, 8)
    return out


@pytest.mark.parametrize("where", ["mdat", "moov"])
def test_truncated_file_moov_at_end(tmp_path, good_mp4, where):
    """A clip cut while being written: either the index (moov, written last) is missing or it is cut short."""
    data = good_mp4.read_bytes()
    start, size = _atoms(data)[where.encode()]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: start + size // 2])
    with pytest.raises(UnreadableMediaError) as e:
        media.decode(cut)
    assert str(cut) in str(e.value)
    assert media.problems(cut)


def test_truncated_file_index_first(tmp_path):
    """A faststart file cut short opens fine but decodes to less than its index declares."""
    path = tmp_path / "fs.mp4"
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (48, 64, 64, 3)).astype(np.uint8)  # noise: packets spread over the file
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        vs = out.add_stream("libx264", rate=24)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    assert media.probe(path, deep=True)["complete"]
    data = path.read_bytes()
    cut = tmp_path / "fs_cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(UnreadableMediaError, match="truncated"):
        media.decode(cut)
    info = media.probe(cut, deep=True)
    assert not info["complete"]
    assert any("truncated" in p or "damaged" in p for p in media.problems(cut))


def test_clip_without_audio_still_serves_video(tmp_path):
    path = media.encode(tmp_path / "silent_film.mp4", _frames(24), 24, None, None)
    clip = media.decode(path)
    assert clip.audio is None and not clip.has_audio and clip.has_video
    assert clip.video_for(VideoPreset(fps=12, size=(32, 32))).shape == (12, 32, 32, 3)
    with pytest.raises(MissingStreamError, match="no audio stream"):
        clip.audio_for(AudioPreset(16000))
    assert media.problems(path) == ["has no audio stream"]


def test_clip_without_video_still_serves_audio(tmp_path):
    path = media.encode(tmp_path / "radio.mp4", None, None, _clicks(SR, [3000]), SR)
    clip = media.decode(path)
    assert clip.video is None and clip.has_audio
    assert clip.audio_for(AudioPreset(8000)).shape == (8000,)
    with pytest.raises(MissingStreamError, match="no video stream"):
        clip.video_for(VideoPreset(fps=1))
    assert media.problems(path) == ["has no video stream"]


def test_video_stream_with_zero_frames(tmp_path):
    path = tmp_path / "zero.mkv"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264rgb", rate=24)
        vs.width = vs.height = 64
        vs.pix_fmt = "rgb24"
        as_ = out.add_stream("pcm_s16le", rate=SR)
        as_.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        f.sample_rate, f.pts, f.time_base = SR, 0, Fraction(1, SR)
        for p in as_.encode(f):
            out.mux(p)
        for p in as_.encode(None):
            out.mux(p)
    with pytest.raises(EmptyMediaError, match="zero decodable frames"):
        media.decode(path)


def test_non_finite_audio(tmp_path):
    path = tmp_path / "nan.mkv"
    x = np.sin(np.arange(SR) / 10).astype(np.float32)
    x[100:110] = np.nan
    x[500] = np.inf
    with av.open(str(path), "w") as out:
        s = out.add_stream("pcm_f32le", rate=SR)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(x[None], format="flt", layout="mono")
        f.sample_rate, f.pts, f.time_base = SR, 0, Fraction(1, SR)
        for p in s.encode(f):
            out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    with pytest.raises(InvalidAudioError, match="11 NaN or infinite"):
        media.decode(path)


def test_absurd_sizes_and_durations(good_mp4):
    with pytest.raises(MediaLimitError, match="frame size 64x64"):
        media.decode(good_mp4, limits=MediaLimits(max_side=32))
    with pytest.raises(MediaLimitError, match="duration"):
        media.decode(good_mp4, limits=MediaLimits(max_duration_s=1.0))
    with pytest.raises(MediaLimitError, match="sample rate"):
        media.decode(good_mp4, limits=MediaLimits(max_sample_rate=8000))
    with pytest.raises(MediaLimitError, match="GiB"):
        media.decode(good_mp4, limits=MediaLimits(max_video_bytes=100_000))
    with pytest.raises(MediaLimitError, match="frames"):
        media.decode(good_mp4, limits=MediaLimits(max_frames=10))


def test_every_media_error_names_the_file(tmp_path, good_mp4):
    cases = [tmp_path / "absent.mp4"]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(good_mp4.read_bytes()[:1000])
    cases.append(bad)
    for p in cases:
        with pytest.raises(MediaError) as e:
            media.decode(p)
        assert e.value.path == str(p) and str(p) in str(e.value)


def test_probe_of_a_good_file(good_mp4):
    info = media.probe(good_mp4, deep=True)
    assert info["has_video"] and info["has_audio"] and info["complete"]
    assert (info["width"], info["height"], info["frames"], info["sample_rate"]) == (64, 64, 48, SR)
    assert info["duration"] == pytest.approx(2.0, abs=0.01)
    assert media.problems(good_mp4) == []



# ----------------------------------------------------------------------------------------------- many channels


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


def _tones(channels: int, n: int, sr: int) -> np.ndarray:
    """One tone per channel, each at its own frequency and level, so a swapped or dropped channel shows.
    Low tones (50 Hz + 10 Hz per channel) so that AAC's band-limited LFE channel (#3 of 5.1/7.1) carries its tone."""
    t = np.arange(n) / sr
    return np.stack([(0.1 + 0.8 * c / 32) * np.sin(2 * np.pi * (50 + 10 * c) * t) for c in range(channels)]
                    ).astype(np.float32)


def _write_audio_only(path: Path, codec: str, audio: np.ndarray, sr: int, layout: str) -> None:
    """Audio written from packed frames (the encoder converts as it needs), so writing never hits the planar path."""
    with av.open(str(path), "w") as out:
        st = out.add_stream(codec, rate=sr)
        st.layout = layout
        fmt = "s16" if codec.startswith("pcm_s16") else "flt"
        for start in range(0, audio.shape[1], 1024):
            block = np.ascontiguousarray(audio[:, start : start + 1024].T).reshape(1, -1)
            data = np.round(block * 32767).astype(np.int16) if fmt == "s16" else block
            f = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
            f.sample_rate, f.pts, f.time_base = sr, start, Fraction(1, sr)
            for p in st.encode(f):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)


_DECODE_EACH = """
import sys, numpy as np
from mova_eval import media
for src in sys.argv[1:]:
    np.save(src + '.npy', media.decode(src).audio)
"""


def _decode_in_child(paths: list[Path]) -> list[np.ndarray]:
    """Decode in a child process: a regression of the ≥ 8-channel crash is a failing test, not a dead test run."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _DECODE_EACH, *map(str, paths)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"decoding died with exit status {r.returncode}: {r.stderr[-2000:]}"
    return [np.load(str(p) + ".npy") for p in paths]


def test_every_channel_count_from_1_to_32_decodes_in_order(tmp_path):
    """PCM s16 in Matroska with 1–32 channels: each channel comes back where it was, sample for sample."""
    sr, n = 16000, 4000
    written, paths = {}, []
    for channels in range(1, 33):
        audio = np.round(_tones(channels, n, sr) * 32767) / 32767
        path = tmp_path / f"pcm{channels}.mkv"
        _write_audio_only(path, "pcm_s16le", audio, sr, _layout(channels))
        written[channels], paths = audio, [*paths, path]
    for channels, got in zip(range(1, 33), _decode_in_child(paths)):
        assert got.shape == (channels, n), channels
        np.testing.assert_allclose(got, written[channels], atol=1.5 / 32768, err_msg=f"{channels} channels")


@pytest.mark.parametrize("layout", ["5.1", "7.1", "7.1(wide)"])
def test_surround_aac_in_mp4_decodes(tmp_path, layout):
    """Standard 5.1 and 7.1 AAC in MP4 (7.1 used to kill the process in PyAV's planar-float conversion)."""
    sr, n = 48000, 48000 + 777
    channels = len(av.AudioLayout(layout).channels)
    audio = _tones(channels, n, sr) * 0.5
    path = tmp_path / "surround.mp4"
    _write_audio_only(path, "aac", audio, sr, layout)
    (got,) = _decode_in_child([path])
    assert got.shape[0] == channels
    m = min(n, got.shape[1])
    assert abs(got.shape[1] - n) <= 1024, "AAC priming or padding left in the decoded track"
    for c in range(channels):
        err = got[c, :m] - audio[c, :m]
        snr = 10 * np.log10(np.sum(audio[c, :m] ** 2) / np.sum(err**2))
        assert snr > 15, f"channel {c} of {layout} does not match what was written ({snr:.1f} dB)"


# ----------------------------------------------------------------------------------------------- ffmpeg decode


def _ffmpeg_cli(path: Path, sr: int, channels: int, fmt: str) -> np.ndarray:
    """What the MOVA toolkit's own call writes (``ffmpeg -i F -f s16le|f32le -ar SR -ac N``), as float [C, N]."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg binary is not installed (scripts/install.sh installs it)")
    out = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-f",
                          {"s16": "s16le", "flt": "f32le"}[fmt], "-ar", str(sr), "-ac", str(channels), "-"],
                         capture_output=True, check=True).stdout
    data = np.frombuffer(out, dtype=np.int16 if fmt == "s16" else np.float32)
    x = data.astype(np.float32) / 32768.0 if fmt == "s16" else data.astype(np.float32)
    return x.reshape(-1, channels).T


_SOURCES = {  # name: (suffix, lossless, sample rate, channels, samples) — lengths that end mid-frame on purpose
    "aac48k_stereo_8s": (".mp4", False, 48000, 2, 193 * 2000 + 123),
    "aac44k_mono_3s": (".mp4", False, 44100, 1, 3 * 44100 + 7),
    "aac16k_mono_short": (".mp4", False, 16000, 1, 5000),
    "pcm48k_stereo": (".mkv", True, 48000, 2, 2 * 48000 + 517),
    "pcm22k_mono": (".mkv", True, 22050, 1, 22050 + 11),
}


@pytest.fixture(scope="module")
def ffmpeg_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("ffmpeg_sources")
    rng = np.random.default_rng(7)
    out = {}
    for name, (suffix, lossless, sr, ch, n) in _SOURCES.items():
        t = np.arange(n) / sr
        tone = 0.3 * np.sin(2 * np.pi * 330 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
        audio = np.stack([tone * (1 - 0.3 * c) + 0.05 * rng.standard_normal(n) for c in range(ch)]).astype(np.float32)
        out[name] = media.encode(root / f"{name}{suffix}", _frames(8, 32, 32), 24, audio, sr, lossless=lossless)
    return out


@pytest.mark.parametrize("source", list(_SOURCES))
@pytest.mark.parametrize("sr,channels,fmt", [(16000, 1, "s16"), (32000, 2, "s16"), (44100, 1, "flt")])
def test_ffmpeg_decoder_gives_the_ffmpeg_command_lines_samples(ffmpeg_sources, source, sr, channels, fmt):
    """MOVA decodes with the ffmpeg command line; the ``ffmpeg`` decoder must write what it writes.

    Same sample count always (no alignment, no cut at the declared duration: AAC's end padding stays, as there).
    Sample values: float output from PCM is identical; other paths may differ by the LSBs that separate the FFmpeg
    PyAV bundles from the installed binary's release (see media.ffmpeg_audio), and never by more.
    """
    path = ffmpeg_sources[source]
    ours = media.ffmpeg_audio(path, sr, channels, fmt)
    theirs = _ffmpeg_cli(path, sr, channels, fmt)
    assert ours.shape == theirs.shape
    assert np.abs(theirs).max() > 0.1  # non-vacuity: a real signal, not silence
    corrected = media.apply_audio_preset(media.decode(path), AudioPreset(sr, mono=channels == 1))
    if source.startswith("aac"):
        assert corrected.shape[-1] < ours.shape[-1], "the corrected decode cuts AAC padding; this one must not"
    diff = np.abs(ours.astype(np.float64) - theirs)
    if fmt == "flt" and source.startswith("pcm"):
        np.testing.assert_array_equal(ours, theirs)
    elif fmt == "flt":
        assert diff.max() < 1e-6
    else:
        assert diff.max() <= 2 / 32768 + 1e-9
        if source.startswith("aac"):
            assert (diff > 0).mean() < 1e-3


def test_ffmpeg_decoder_downmix_is_ffmpegs_not_a_channel_mean(ffmpeg_sources):
    """``-ac 1`` of stereo is FFmpeg's matrix; ``-ac 2`` of mono is the −3 dB upmix IS/CLAP then average."""
    path = ffmpeg_sources["pcm48k_stereo"]
    mono = media.ffmpeg_audio(path, 48000, 1, "flt")[0]
    both = media.decode(path).audio
    np.testing.assert_allclose(mono, (both[0] + both[1]) * np.sqrt(0.5), atol=1e-6)  # stereo → mono: (L + R)·√½
    assert np.abs(mono - both.mean(axis=0)).max() > 0.01  # …which is 3 dB above the channel mean
    up = media.ffmpeg_audio(ffmpeg_sources["pcm22k_mono"], 22050, 2, "flt")
    src = media.decode(ffmpeg_sources["pcm22k_mono"]).audio[0]
    np.testing.assert_allclose(up[0], src * np.float32(np.sqrt(0.5)), atol=1e-6)
    np.testing.assert_array_equal(up[0], up[1])
