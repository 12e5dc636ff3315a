"""Audio track choice, rotation metadata and clipping in media.decode (issue 15 item 2), on files made here."""
from __future__ import annotations

import subprocess
from fractions import Fraction

import numpy as np
import pytest

from mova_eval import media
from mova_eval.errors import AudioTrackError

SR = 16_000


def _tone(n: int, amp: float, freq: float = 440.0) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)[None]


def _write_tracks(path, tracks, dispositions=None, fmt="mp4", rates=None):
    """An audio-only file with one AAC (mp4) or PCM (mkv) track per array in ``tracks``, each at its rate in
    ``rates`` (default: every track at SR)."""
    import av

    rates = rates or [SR] * len(tracks)
    with av.open(str(path), "w", format=fmt) as out:
        streams = [out.add_stream("aac" if fmt == "mp4" else "pcm_s16le", rate=r) for r in rates]
        for i, s in enumerate(streams):
            s.layout = "mono"
            if dispositions is not None:
                s.disposition = dispositions[i]
        for s, x, rate in zip(streams, tracks, rates):
            for start in range(0, x.shape[1], 1024):
                block = np.ascontiguousarray(x[:, start:start + 1024])
                if fmt == "mp4":
                    f = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
                else:
                    f = av.AudioFrame.from_ndarray((block * 32767).astype(np.int16), format="s16", layout="mono")
                f.sample_rate, f.pts, f.time_base = rate, start, Fraction(1, rate)
                for p in s.encode(f):
                    out.mux(p)
            for p in s.encode(None):
                out.mux(p)
    return path


def test_silent_first_track_does_not_hide_the_speech_track(tmp_path):
    # FFmpeg's mp4 muxer flags the first (silent) track default by itself: the rule must pass it over.
    p = _write_tracks(tmp_path / "two.mp4", [np.zeros((1, SR), np.float32), _tone(SR, 0.3)])
    clip = media.decode(p)
    assert clip.decode.audio_tracks == 2
    assert clip.decode.audio_track == 1, clip.decode
    assert clip.decode.audio_track_rule.startswith("longest non-silent")
    assert np.abs(clip.audio).max() > 0.2
    assert clip.decode.cache_token() == "audio_track=1"


def test_default_disposition_wins_over_a_longer_track(tmp_path):
    import av

    D = av.stream.Disposition
    p = _write_tracks(tmp_path / "d.mkv", [_tone(2 * SR, 0.3), _tone(SR, 0.3, 880.0)], [D(0), D.default], "matroska")
    clip = media.decode(p)
    assert (clip.decode.audio_track, clip.decode.audio_track_rule.split(" (")[0]) == (1, "default disposition")
    assert clip.audio.shape[1] == SR
    # without any default flag, the longest non-silent track
    q = _write_tracks(tmp_path / "n.mkv", [_tone(SR, 0.3), _tone(2 * SR, 0.3, 880.0)], [D(0), D(0)], "matroska")
    assert media.decode(q).decode.audio_track == 1


def test_audio_track_override_and_its_error(tmp_path):
    p = _write_tracks(tmp_path / "two.mp4", [np.zeros((1, SR), np.float32), _tone(SR, 0.3)])
    clip = media.decode(p, audio_track=0)
    assert (clip.decode.audio_track, clip.decode.audio_track_rule) == (0, "media.audio_track")
    assert np.abs(clip.audio).max() < 1e-3
    with pytest.raises(AudioTrackError, match=r"media.audio_track=2 does not exist: the file has tracks 0-1") as e:
        media.decode(p, audio_track=2)
    assert str(p) in str(e.value)
    # the toolkit-style decode reads the same track as the Clip
    x = media.apply_audio_preset(media.decode(p), media.AudioPreset(SR, decoder="ffmpeg"))
    assert np.abs(x).max() > 0.2


def test_single_track_file_keeps_its_cache_token_empty(tmp_path):
    p = tmp_path / "one.mp4"
    media.encode(p, np.zeros((4, 16, 16, 3), np.uint8), 8.0, _tone(SR // 2, 0.3), SR)
    clip = media.decode(p)
    assert (clip.decode.audio_track, clip.decode.audio_track_rule, clip.decode.cache_token()) == (0, "only track", "")
    assert (clip.decode.width, clip.decode.height, clip.decode.rotation) == (16, 16, 0)


def _pattern(h=16, w=32):
    img = np.zeros((h, w, 3), np.uint8)
    img[:8, :8] = 255
    img[8:, 24:, 0] = 200
    img[:4, 16:20, 1] = 255
    return img


def _rotated_file(path, degrees, hflip=False):
    import av

    img = _pattern()
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt, s.options = 32, 16, "yuv444p", {"qp": "0"}
        s.set_display_rotation(degrees, hflip=hflip)
        for i in range(3):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


@pytest.mark.parametrize("degrees,hflip", [(90, False), (180, False), (270, False), (0, True), (90, True)])
def test_display_matrix_is_applied_like_ffmpeg_autorotate(tmp_path, degrees, hflip):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    p = _rotated_file(tmp_path / "r.mp4", degrees, hflip)
    clip = media.decode(p)
    # the reference: the ffmpeg command line, which autorotates by default
    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(p), "-frames:v", "1", "-f",
                        "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    h, w = clip.video.shape[1:3]
    assert (clip.decode.width, clip.decode.height) == (w, h)
    assert (h, w) == ((32, 16) if degrees in (90, 270) else (16, 32))
    ref = np.frombuffer(r.stdout, np.uint8).reshape(h, w, 3)
    assert np.abs(clip.video[0].astype(int) - ref).max() <= 2
    assert not np.array_equal(clip.video[0], _pattern()[:h, :w])  # non-vacuity: the frame did change
    assert clip.decode.orientation_source == "display matrix"
    assert clip.decode.cache_token().startswith("orientation=")


def test_rotate_tag_is_applied(tmp_path):
    import av

    p = tmp_path / "tag.mkv"
    img = _pattern()
    with av.open(str(p), "w") as out:
        s = out.add_stream("libx264rgb", rate=10)
        s.width, s.height, s.pix_fmt, s.options = 32, 16, "rgb24", {"qp": "0"}
        s.metadata["rotate"] = "90"   # degrees clockwise, as older FFmpeg wrote it
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = 0
        for pk in [*s.encode(f), *s.encode()]:
            out.mux(pk)
    clip = media.decode(p)
    assert clip.decode.orientation_source == "rotate tag"
    assert np.array_equal(clip.video[0], np.rot90(img, -1))


def test_clipping_fraction_and_warning(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(2 * SR).astype(np.float32)
    x *= 0.9 / np.abs(x).max()  # every sample below 0.99 of full scale
    clean, clipped = tmp_path / "clean.mkv", tmp_path / "clipped.mkv"
    media.encode(clean, None, None, x, SR, lossless=True)
    y = x.copy()
    hit = rng.choice(y.size, 1600, replace=False)  # 1600 of the 32000 samples at full scale, half of them negative
    y[hit] = np.where(np.arange(1600) % 2 == 0, 1.0, -1.0)
    media.encode(clipped, None, None, y, SR, lossless=True)
    c, k = media.decode(clean).decode, media.decode(clipped).decode
    assert c.clipping_fraction == 0.0 and not c.warnings
    assert k.clipping_fraction == pytest.approx(1600 / 32000, abs=1e-9)  # 5 %, counted by construction
    assert k.clipping_fraction > media.CLIP_WARN_FRACTION
    assert any("clipped audio" in w and str(clipped) in w for w in k.warnings)


def _write_rates(path, rates):
    """A Matroska audio-only file with one PCM track of a 1 s, 0.3-amplitude 440 Hz tone per rate in ``rates``."""
    tones = [(0.3 * np.sin(2 * np.pi * 440 * np.arange(r) / r)).astype(np.float32)[None] for r in rates]
    return _write_tracks(path, tones, fmt="matroska", rates=rates)


def test_every_tracks_declared_rate_is_checked_not_only_the_first(tmp_path):
    from mova_eval.errors import MediaLimitError

    limits = media.MediaLimits(min_sample_rate=12_000)
    p = _write_rates(tmp_path / "rates.mkv", [8_000, 16_000])
    # track 0 is outside the limits, track 1 is usable: the rule takes track 1 (the header check used to refuse
    # the whole file from track 0's rate alone)
    clip = media.decode(p, limits=limits)
    assert clip.decode.audio_track == 1 and clip.sample_rate == 16_000, clip.decode
    assert any("audio track 0 is not usable" in w and "8000 Hz" in w for w in clip.decode.warnings)
    # media.audio_track picks one track: only that one counts
    assert media.decode(p, limits=limits, audio_track=1).sample_rate == 16_000
    with pytest.raises(MediaLimitError, match="track 0: 8000 Hz"):
        media.decode(p, limits=limits, audio_track=0)
    # no usable track: refused from the header, naming every track's rate
    with pytest.raises(MediaLimitError, match="track 0: 8000 Hz, track 1: 16000 Hz"):
        media.decode(p, limits=media.MediaLimits(min_sample_rate=20_000))


class _LyingHeader:
    """A real container whose audio streams' header claims ``header_rate`` (what a lying header or HE-AAC with
    implicit SBR signalling look like to media.decode); the packets, frames and everything else are the file's."""

    def __init__(self, container, header_rate: int):
        self._c, self._rate = container, header_rate

    def __getattr__(self, name):
        return getattr(self._c, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._c.__exit__(*exc)

    @property
    def streams(self):
        outer = self

        class Streams:
            def __getattr__(self, name):
                return getattr(outer._c.streams, name)

            @property
            def audio(self):
                return [_LyingStream(s, outer._rate) for s in outer._c.streams.audio]

        return Streams()

    def decode(self, *streams, **kw):
        return self._c.decode(*[getattr(s, "_s", s) for s in streams], **kw)


class _LyingStream:
    def __init__(self, stream, rate):
        self._s, self._rate = stream, rate

    def __getattr__(self, name):
        return getattr(self._s, name)

    @property
    def codec_context(self):
        rate, ctx = self._rate, self._s.codec_context

        class Ctx:
            sample_rate = rate

            def __getattr__(self, name):
                return getattr(ctx, name)

        return Ctx()

    @property
    def sample_rate(self):
        return self._rate


def test_a_decoded_rate_that_differs_from_the_header_is_the_rate_returned_and_checked(tmp_path, monkeypatch):
    """No file written here reaches this branch on its own: PyAV probes every stream on open
    (avformat_find_stream_info), which replaces the container's rate with the decoder's. Tried: AAC, Opus, MP3 and
    FLAC in Matroska with the SamplingFrequency element patched to 32 kHz (all reported the decoder's rate) and PCM
    (decodes at the header's rate); the real case, HE-AAC whose SBR doubles a core rate the probe reported, needs an
    SBR encoder this FFmpeg build lacks (only aac, aac_fixed, aac_latm). So the seam is the header alone: the
    container as opened, with its audio stream claiming 32 kHz over 48 kHz frames."""
    from mova_eval.errors import MediaLimitError

    real_open = media._open
    p = _write_tracks(tmp_path / "r.mkv", [(0.3 * np.sin(2 * np.pi * 440 * np.arange(48_000) / 48_000))
                                           .astype(np.float32)[None]], fmt="matroska", rates=[48_000])
    honest = media.decode(p)
    assert honest.sample_rate == 48_000 and honest.audio.shape[1] == 48_000
    monkeypatch.setattr(media, "_open", lambda path: _LyingHeader(real_open(path), 32_000))
    with media._open(p) as c:  # non-vacuity: the seam really makes the header lie
        assert c.streams.audio[0].codec_context.sample_rate == 32_000
    clip = media.decode(p)
    # the samples come out at 48 kHz, so that is the rate returned, and the 1 s tone lasts 1 s (cut at the declared
    # duration with the decoded rate, not 2/3 of it with the header's)
    assert clip.sample_rate == 48_000 and clip.audio.shape[1] == 48_000
    np.testing.assert_allclose(clip.audio, honest.audio, atol=0)
    # the decoded rate is checked against the limits like a header's: 32 kHz passes the header check, 48 kHz not
    with pytest.raises(MediaLimitError, match="decodes at 48000 Hz \\(header: 32000 Hz\\)"):
        media.decode(p, limits=media.MediaLimits(max_sample_rate=44_100))
