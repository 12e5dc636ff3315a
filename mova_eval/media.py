"""Decode once, preprocess by named preset, encode for generators.

Everything that touches containers goes through here (PyAV), so a clip is decoded exactly once per run and
each metric asks for the preprocessing it needs (fps, size, filter, sample rate, channels, duration) by preset.

Quirks handled here (each recorded in the Clip's :class:`~mova_eval.spec.DecodeInfo`):

- Several audio tracks: the rule is the first track flagged ``default`` that is not silent, else the longest
  non-silent track, else (all silent) the first default, else track 0; ``media.audio_track=N`` overrides. A silent
  default track is passed over on purpose: FFmpeg's mp4 muxer flags the first track of each kind ``default``
  whether or not it holds anything, so "default first" alone would pick a silent first track over the speech.
  Silent means a peak below -60 dBFS.
- Rotation: the display matrix (frame side data; FFmpeg's mp4/mov demuxer exports it) or, without one, a
  ``rotate`` tag (degrees clockwise, what older FFmpeg wrote) is applied so frames come out upright, and the
  Clip's size is the displayed size. All eight right-angle orientations (rotations and mirrors) are handled; a
  matrix that is not a right-angle turn is snapped to the nearest one, with a warning.
- Clipping: ``clipping_fraction`` is the share of samples with ``|x| >= 0.99``. Above 0.1 % decode warns. Why
  0.1 %: measured with a speech-like signal, nothing that is peak-normalised but unclipped reaches the level
  (0 % through AAC and PCM), a hard clip after 1.5x gain reads 0.01-0.2 % and after 3x gain 0.6-5 % (AAC's
  ripple spreads the plateau, so it reads lower than PCM). A test tone at 0 dBFS is flagged too (it sits at the
  level by construction).
"""
from __future__ import annotations

import hashlib
import math
import os
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from mova_eval.errors import (
    AudioTrackError,
    EmptyMediaError,
    InvalidAudioError,
    MediaError,
    MediaLimitError,
    MissingStreamError,
    UnreadableMediaError,
)
from mova_eval.spec import Clip, DecodeInfo

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi")


@dataclass(frozen=True)
class MediaLimits:
    """Inputs beyond these are refused with MediaLimitError rather than exhausting memory or time."""

    max_side: int = 4096
    min_side: int = 8
    max_duration_s: float = 600.0
    max_frames: int = 20_000
    max_video_bytes: int = 8 << 30        # decoded RGB frames held in memory
    min_sample_rate: int = 1_000
    max_sample_rate: int = 384_000
    max_fps: float = 1_000.0


DEFAULT_LIMITS = MediaLimits()

#: ``|x|`` at or beyond this counts as a clipped sample (-0.09 dBFS)
CLIP_LEVEL = 0.99
#: share of clipped samples above which decode warns (see the module docstring for why 0.1 %)
CLIP_WARN_FRACTION = 0.001
#: a track whose peak is below this (-60 dBFS) is silent for the audio-track rule
SILENCE_PEAK = 10 ** (-60 / 20)

# A stream that decodes to less than this share of what its container declares is truncated or corrupt.
_COMPLETE_SHARE = 0.98


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


FREE_BOX_HEADER = 8  # size (4 bytes, big-endian) + type b"free"


def pad_mp4(path: str | Path, size: int, filler: bytes | None = None) -> int:
    """Grow an MP4/MOV file to exactly ``size`` bytes by appending one top-level ``free`` box (ISO/IEC 14496-12
    §8.1.2: a box whose contents players and demuxers skip), so no sample, timestamp or header that is decoded
    changes. ``filler`` is the box's payload (random bytes make it incompressible); it is cut or zero-extended to
    fit. Returns the number of bytes added (0 when the file already has ``size``); a file larger than ``size``, or
    a gap smaller than a box header, raises ValueError naming the file."""
    path = Path(path)
    have = path.stat().st_size
    gap = size - have
    if gap == 0:
        return 0
    if gap < FREE_BOX_HEADER or gap >= 1 << 32:
        raise ValueError(f"{path}: cannot pad {have} bytes to {size} with one free box (gap {gap} bytes)")
    payload = (filler or b"")[: gap - FREE_BOX_HEADER]
    payload += bytes(gap - FREE_BOX_HEADER - len(payload))
    with open(path, "ab") as f:
        f.write(gap.to_bytes(4, "big") + b"free" + payload)
    return gap


def _open(path: Path):
    """Open a container, turning every way of failing into UnreadableMediaError naming the file."""
    import av

    if not path.is_file():
        raise UnreadableMediaError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise UnreadableMediaError(path, "file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise UnreadableMediaError(path, f"cannot open container ({e.__class__.__name__}: {e})") from e
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise UnreadableMediaError(path, f"cannot open container ({e.__class__.__name__}: {e})") from e
    for s in [*container.streams.video, *container.streams.audio]:
        # A damaged header (e.g. a truncated moov atom) leaves streams without a usable codec.
        if s.codec_context is None or not s.codec_context.name:
            what = f"{s.type} stream #{s.index}"  # read before close(): a closed stream must not be touched
            container.close()
            raise UnreadableMediaError(path, f"container header is damaged: {what} has no codec")
    return container


def _stream_seconds(stream, value) -> float | None:
    if value is None or stream.time_base is None:
        return None
    return float(value * stream.time_base)


def probe(path: str | Path, *, deep: bool = False) -> dict:
    """Stream facts without decoding: used by `validate` and to skip work early.

    ``deep`` also reads every packet (no decoding, so it stays cheap) and sets ``complete`` to False when the
    file holds fewer packets than its index declares — the usual sign of a clip truncated while being written.
    """
    import av

    path = Path(path)
    with _open(path) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        dur = float(c.duration / 1_000_000) if c.duration else None
        if dur is None:
            durs = [d for s in (v, a) if s is not None for d in [_stream_seconds(s, s.duration)] if d]
            dur = max(durs) if durs else None
        info = {
            "has_video": v is not None,
            "has_audio": a is not None,
            "width": v.codec_context.width if v else None,
            "height": v.codec_context.height if v else None,
            "fps": float(v.average_rate) if v is not None and v.average_rate else None,
            "frames": v.frames if v is not None else None,
            "sample_rate": a.codec_context.sample_rate if a else None,
            "channels": a.codec_context.channels if a else None,
            "duration": dur,
        }
        if deep:
            counts = {s.index: 0 for s in (v, a) if s is not None}
            problem = None
            try:
                for packet in c.demux([s for s in (v, a) if s is not None]):
                    if packet.size and packet.stream.index in counts:
                        counts[packet.stream.index] += 1
            except av.error.FFmpegError as e:
                problem = f"stops after a damaged packet ({e})"
            complete = problem is None
            if v is not None and v.frames and counts[v.index] < _COMPLETE_SHARE * v.frames - 1:
                complete = False
                problem = f"holds {counts[v.index]} of the {v.frames} video packets its index declares (truncated?)"
            info["complete"], info["problem"] = complete, problem
    return info


def problems(path: str | Path, *, deep_decode: bool = False, audio_track: int | None = None,
             notes: list[str] | None = None) -> list[str]:
    """Every reason a clip could not be scored fully (for `mova-eval validate`): from the headers and packets, and
    with ``deep_decode`` also from running :func:`decode` exactly as a run would (a corrupt middle, a 1x1 frame, a
    stream without packets, NaN samples are found only then). ``notes``, when given, receives what a successful
    decode warns about (clipping, an unusable extra track, an odd rotation) and audio of more than two channels
    (scored through a downmix): worth knowing, not a reason the clip cannot be scored. Never raises."""
    try:
        info = probe(path, deep=True)
    except MediaError as e:
        return [e.problem]
    except Exception as e:  # noqa: BLE001 - validate reports, it must not crash on any file
        return [f"cannot be probed ({type(e).__name__}: {e})"]
    out = []
    if not info["has_video"]:
        out.append("has no video stream")
    if not info["has_audio"]:
        out.append("has no audio stream")
    if not info["duration"]:
        out.append("has zero duration")
    if not info["complete"]:
        out.append(info["problem"])
    if deep_decode:
        try:
            clip = decode(path, audio_track=audio_track)
        except MediaError as e:
            out.append(f"decoding as a run would fails: {e.problem}")
        except Exception as e:  # noqa: BLE001
            out.append(f"decoding as a run would fails unexpectedly ({type(e).__name__}: {e})")
        else:
            if notes is not None:
                notes += [w.replace(f"{path}: ", "", 1) for w in clip.decode.warnings]
                if clip.audio is not None and clip.audio.shape[0] > 2:
                    notes.append(f"audio has {clip.audio.shape[0]} channels (track {clip.decode.audio_track}); "
                                 f"metrics hear a downmix (the channel mean, or FFmpeg's -ac matrix for the "
                                 f"toolkit decoder)")
    return out


def decode(path: str | Path, *, video: bool = True, audio: bool = True, limits: MediaLimits = DEFAULT_LIMITS,
           audio_track: int | None = None) -> Clip:
    """Decode a file into a :class:`Clip` (video uint8 [T,H,W,3], audio float32 [C,N]).

    A file with one of the two streams missing still decodes (the missing one is None); metrics that need it
    raise MissingStreamError for that item only. A file with neither stream is an error. Which audio track is
    used, the orientation applied and the clipped share of samples are in ``Clip.decode`` (module docstring);
    ``audio_track`` picks a track by its index among the audio streams (AudioTrackError when there is none such).

    Timing. Both streams share one time origin, the start of the video stream (the audio's when there is no
    video). ``Clip.fps`` is the video stream's average frame rate (the rate implied by the frame timestamps when
    the header's rate is missing or off by more than 2x), and ``video[k]`` is the frame on screen at ``k / fps``:
    constant-rate input is returned frame for frame, variable-rate input is resampled onto that constant grid by
    presentation time (frames repeated or dropped). ``audio[:, n]`` plays at ``n / sample_rate``: audio that
    starts later than the video is preceded by silence, earlier samples are dropped, encoder priming is removed
    where the container signals it (mp4/mov edit lists, Matroska/WebM codec delay) and padding after the
    stream's declared duration is cut (mp4/mov), so an AAC round trip through :func:`encode` returns the
    original samples at their original positions. Limits of the formats: AAC in Matroska keeps up to one
    frame of end padding (no declared stream duration), and MP3 in AVI keeps the encoder's priming (~1105
    samples), because AVI cannot signal it.
    """
    path = Path(path)
    container = _open(path)
    content_hash = file_sha256(path)
    warnings: list[str] = []
    orient = _Orientation()
    with container:
        vs = container.streams.video[0] if container.streams.video else None
        tracks = list(container.streams.audio)
        if audio_track is not None and not 0 <= audio_track < len(tracks):
            have = f"tracks 0-{len(tracks) - 1}" if tracks else "no audio track"
            raise AudioTrackError(path, f"media.audio_track={audio_track} does not exist: the file has {have}")
        as_ = tracks[audio_track if audio_track is not None else 0] if tracks else None
        if vs is None and as_ is None:
            if not container.streams:
                raise UnreadableMediaError(path, "holds no streams at all (damaged, or not a media file)")
            raise MissingStreamError(path, "video or audio")
        _check_declared(path, container, vs, tracks, audio_track, limits)
        origin = _stream_seconds(vs, vs.start_time) if vs is not None else None
        defaults = [bool(t.disposition & _default_disposition()) for t in tracks]
        frames: np.ndarray | None = None
        fps: float | None = None
        if video and vs is not None:
            frames, fps, orient = _decode_video(container, vs, path, limits)
            warnings += orient.warnings
    samples, sr, chosen, rule = (None, None, None, "")
    if audio and tracks:
        samples, sr, chosen, rule, track_warnings = _choose_audio(path, origin, limits, defaults, audio_track)
        warnings += track_warnings
    clipping = None
    if samples is not None:
        clipping = float(np.count_nonzero(np.abs(samples) >= CLIP_LEVEL) / samples.size) if samples.size else 0.0
        if clipping > CLIP_WARN_FRACTION:
            warnings.append(f"{path}: {clipping:.2%} of the audio samples are at or beyond {CLIP_LEVEL} of full "
                            f"scale (clipped audio; over the {CLIP_WARN_FRACTION:.1%} warning threshold), so "
                            f"speech and audio-quality scores of this clip are unreliable")
    durations = []
    if frames is not None and fps:
        durations.append(frames.shape[0] / fps)
    if samples is not None and sr:
        durations.append(samples.shape[1] / sr)
    duration = max(durations) if durations else 0.0
    info = DecodeInfo(audio_track=chosen, audio_tracks=len(tracks), audio_track_rule=rule,
                      rotation=orient.degrees, mirrored=orient.mirrored, orientation_source=orient.source,
                      width=None if frames is None else int(frames.shape[2]),
                      height=None if frames is None else int(frames.shape[1]),
                      clipping_fraction=clipping, warnings=tuple(warnings))
    return Clip(path=str(path), content_hash=content_hash, video=frames, fps=fps, audio=samples, sample_rate=sr,
                duration=duration, decode=info)


def _default_disposition():
    import av

    return av.stream.Disposition.default


def _choose_audio(path: Path, origin: float | None, limits: MediaLimits, defaults: list[bool],
                  override: int | None) -> tuple[np.ndarray, int, int, str, list[str]]:
    """Decode the audio track the rule picks (module docstring): samples, rate, track index, rule, warnings."""
    if override is not None:
        s, sr = _decode_audio(path, origin, limits, override)
        return s, sr, override, "media.audio_track", []
    if len(defaults) == 1:
        s, sr = _decode_audio(path, origin, limits, 0)
        return s, sr, 0, "only track", []
    decoded: dict[int, tuple[np.ndarray, int]] = {}
    failed: dict[int, MediaError] = {}
    for i in range(len(defaults)):
        try:
            decoded[i] = _decode_audio(path, origin, limits, i)
        except MediaError as e:
            failed[i] = e
    if not decoded:
        raise failed[0]
    warnings = [f"{path}: audio track {i} is not usable ({e.problem}); the other tracks were considered"
                for i, e in failed.items()]
    loud = [i for i, (s, _) in decoded.items() if s.size and float(np.max(np.abs(s))) >= SILENCE_PEAK]
    loud_defaults = [i for i in loud if defaults[i]]
    if loud_defaults:
        pick, rule = loud_defaults[0], "default disposition"
    elif loud:
        pick = max(loud, key=lambda i: (decoded[i][0].shape[1] / decoded[i][1], -i))
        rule = "longest non-silent"
    else:
        usable_defaults = [i for i in decoded if defaults[i]]
        pick = usable_defaults[0] if usable_defaults else min(decoded)
        rule = "all tracks silent: " + ("default disposition" if usable_defaults else "first track")
    if len(decoded) > 1:
        rule += f" (of {len(defaults)} tracks; silent: {sorted(set(decoded) - set(loud)) or 'none'})"
    s, sr = decoded[pick]
    return s, sr, pick, rule, warnings


def _check_declared(path: Path, container, vs, tracks: list, audio_track: int | None, limits: MediaLimits) -> None:
    """Refuse absurd inputs from the header alone, before decoding a single frame.

    Audio: every track the rule may use is checked (``media.audio_track``'s track alone when it is set). The file is
    refused only when none is within the rate limits; a track outside them is left to the rule, which reports it
    as not usable and considers the others (checking only track 0 here refused a file whose usable speech track
    was track 1, and let a chosen later track through unchecked)."""
    if vs is not None:
        w, h = vs.codec_context.width, vs.codec_context.height
        if w and h and (max(w, h) > limits.max_side or min(w, h) < limits.min_side):
            raise MediaLimitError(path, f"frame size {w}x{h} is outside [{limits.min_side}, {limits.max_side}] pixels")
    candidates = [audio_track] if audio_track is not None else list(range(len(tracks)))
    bad = {}
    for i in candidates:
        sr = tracks[i].codec_context.sample_rate
        if sr and not limits.min_sample_rate <= sr <= limits.max_sample_rate:
            bad[i] = sr
    if candidates and len(bad) == len(candidates):
        rates = ", ".join(f"track {i}: {sr} Hz" for i, sr in bad.items())
        raise MediaLimitError(path, f"audio sample rate ({rates}) is outside "
                                    f"[{limits.min_sample_rate}, {limits.max_sample_rate}] Hz")
    dur = float(container.duration / 1_000_000) if container.duration else None
    if dur is not None and dur > limits.max_duration_s:
        raise MediaLimitError(path, f"declared duration {dur:.1f} s is over the {limits.max_duration_s:.0f} s limit")
    if vs is not None and vs.frames and vs.frames > limits.max_frames:
        raise MediaLimitError(path, f"declares {vs.frames} video frames, over the {limits.max_frames} limit")
    if vs is not None and vs.frames and vs.codec_context.width and vs.codec_context.height:
        need = vs.frames * vs.codec_context.width * vs.codec_context.height * 3
        if need > limits.max_video_bytes:
            raise MediaLimitError(path, f"decoded video would need {need / 2**30:.1f} GiB, over the "
                                        f"{limits.max_video_bytes / 2**30:.1f} GiB limit")


def _stream_fps(stream, limits: MediaLimits) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate:
            r = float(rate)
            if math.isfinite(r) and 0 < r <= limits.max_fps:
                return r
    return None


class _FrameStore:
    """Decoded frames written straight into one array when the container declares the count (no second copy
    from stacking a list), else collected in a list."""

    def __init__(self, declared: int, width: int, height: int):
        self.buf = np.empty((declared, height, width, 3), np.uint8) if declared > 0 and width and height else None
        self.frames: list[np.ndarray] = []
        self.n = 0
        self.shape: tuple[int, ...] | None = None

    def add(self, img: np.ndarray, path: Path) -> None:
        if self.shape is None:
            self.shape = img.shape
        elif img.shape != self.shape:
            raise UnreadableMediaError(path, f"frame size changes mid-stream from {self.shape[1]}x{self.shape[0]} "
                                             f"to {img.shape[1]}x{img.shape[0]} (frame {self.n})")
        if self.buf is not None and (self.n >= len(self.buf) or img.shape != self.buf.shape[1:]):
            self.frames, self.buf = list(self.buf[: self.n]), None  # more frames than declared: fall back
        if self.buf is not None:
            self.buf[self.n] = img
        else:
            self.frames.append(img)
        self.n += 1

    def array(self, index: np.ndarray | None) -> np.ndarray:
        if self.buf is not None:
            arr = self.buf[: self.n]
            return arr if index is None else arr[index]
        return np.stack(self.frames) if index is None else np.stack([self.frames[i] for i in index])


@dataclass
class _Orientation:
    """What turns decoded frames upright: ``img = rot90(mirror(img) if mirrored else img, degrees // 90)``."""

    degrees: int = 0          # counter-clockwise
    mirrored: bool = False    # horizontal mirror, before the turn
    source: str = ""          # "display matrix" | "rotate tag" | ""
    warnings: tuple[str, ...] = ()

    def apply(self, img: np.ndarray) -> np.ndarray:
        if self.mirrored:
            img = img[:, ::-1]
        return np.rot90(img, self.degrees // 90) if self.degrees else img


#: signs of the display matrix's [a, b, c, d] (FFmpeg layout: 16.16 fixed point, row-major 3x3) → (ccw turn,
#: mirror), established against the ``ffmpeg`` command line's autorotation for all eight orientations
_DISPLAY_MATRIX_ORIENTATION = {
    (1, 0, 0, 1): (0, False), (-1, 0, 0, 1): (0, True), (1, 0, 0, -1): (180, True), (-1, 0, 0, -1): (180, False),
    (0, -1, 1, 0): (90, False), (0, 1, -1, 0): (270, False), (0, -1, -1, 0): (270, True), (0, 1, 1, 0): (90, True),
}


def _orientation(frame, stream, path: Path) -> _Orientation:
    """The orientation a file asks for: its display matrix, else a ``rotate`` tag, else upright."""
    for sd in frame.side_data:
        if "DISPLAYMATRIX" not in str(sd.type):
            continue
        raw = bytes(sd)
        if len(raw) < 36:
            break
        m = np.frombuffer(raw[:36], dtype=np.int32).astype(np.float64).reshape(3, 3) / 65536.0
        a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
        if abs(a) + abs(d) >= abs(b) + abs(c):
            key = (int(np.sign(a) or 1), 0, 0, int(np.sign(d) or 1))
        else:
            key = (0, int(np.sign(b) or 1), int(np.sign(c) or 1), 0)
        degrees, mirrored = _DISPLAY_MATRIX_ORIENTATION[key]
        warnings: tuple[str, ...] = ()
        exact = np.array([[key[0], key[1]], [key[2], key[3]]], dtype=np.float64)
        if not np.allclose(m[:2, :2] / max(np.hypot(a, c), 1e-9), exact, atol=1e-3):
            warnings = (f"{path}: the display matrix is not a right-angle turn ({m[:2, :2].round(3).tolist()}); "
                        f"applied the nearest one ({degrees} degrees{', mirrored' if mirrored else ''})",)
        return _Orientation(degrees, mirrored, "display matrix", warnings)
    tag = next((v for k, v in stream.metadata.items() if k.lower() == "rotate"), None)  # Matroska upper-cases tags
    if tag is not None:
        try:
            clockwise = float(tag)
        except ValueError:
            return _Orientation(warnings=(f"{path}: rotate tag {tag!r} is not a number; frames left as stored",))
        if clockwise % 90:
            return _Orientation(warnings=(f"{path}: rotate tag {tag!r} is not a multiple of 90 degrees; frames "
                                          f"left as stored",))
        return _Orientation(int(-clockwise) % 360, False, "rotate tag")
    return _Orientation()


def _decode_video(container, stream, path: Path, limits: MediaLimits) -> tuple[np.ndarray, float, _Orientation]:
    import av

    stream.thread_type = "AUTO"  # frame-threaded decoding; the output is the same as single-threaded
    store: _FrameStore | None = None
    orient = _Orientation()
    times: list[float | None] = []
    budget = limits.max_video_bytes
    try:
        for frame in container.decode(stream):
            if store is None:
                orient = _orientation(frame, stream, path)
            img = orient.apply(frame.to_ndarray(format="rgb24"))
            if store is None:  # sized after the turn: a 90-degree file's frames are stored H and W swapped
                store = _FrameStore(stream.frames or 0, img.shape[1], img.shape[0])
            store.add(img, path)
            times.append(frame.time)
            budget -= img.nbytes
            if store.n > limits.max_frames:
                raise MediaLimitError(path, f"more than {limits.max_frames} video frames")
            if budget < 0:
                raise MediaLimitError(path, f"decoded video exceeds {limits.max_video_bytes / 2**30:.1f} GiB")
    except av.error.FFmpegError as e:
        raise UnreadableMediaError(path, f"video stream is truncated or corrupt: decoding stopped after "
                                         f"{store.n if store else 0} frame(s) ({e})") from e
    n = store.n if store else 0
    if not n:
        raise EmptyMediaError(path, "video stream has zero decodable frames")
    if stream.frames and n < _COMPLETE_SHARE * stream.frames - 1:
        raise UnreadableMediaError(path, f"video stream is truncated: {n} of the {stream.frames} frames "
                                         f"its index declares could be decoded")
    fps = _stream_fps(stream, limits)
    measured = _timestamp_fps(times)
    if measured is not None and (fps is None or not 0.5 < fps / measured < 2.0):
        fps = measured  # a missing or mislabelled rate (e.g. a 1000 fps time base): trust the timestamps
    if fps is None:
        raise UnreadableMediaError(path, "video stream has no usable frame rate")
    if n / fps > limits.max_duration_s:
        raise MediaLimitError(path, f"video lasts {n / fps:.1f} s, over the {limits.max_duration_s:.0f} s limit")
    arr = store.array(constant_rate_indices(times, fps))
    arr.setflags(write=False)
    return arr, fps, orient


def _timestamp_fps(times: list[float | None]) -> float | None:
    """Frames per second implied by increasing timestamps (None when they are missing or not increasing)."""
    if len(times) < 2 or any(t is None for t in times):
        return None
    span = times[-1] - times[0]
    if span <= 0 or any(b <= a for a, b in zip(times, times[1:])):
        return None
    return (len(times) - 1) / span


def constant_rate_indices(times: list[float | None], fps: float) -> np.ndarray | None:
    """Which decoded frame is on screen at each instant k / fps, or None when the frames already are on that grid.

    Frames without a timestamp, or with timestamps that go backwards, are taken in decode order (None).
    """
    if len(times) < 2 or any(t is None for t in times):
        return None
    t = np.asarray(times, dtype=np.float64)
    if np.any(np.diff(t) <= 0):
        return None
    t = t - t[0]
    if np.all(np.abs(t - np.arange(len(t)) / fps) < 0.5 / fps):
        return None
    n_out = max(1, int(round(t[-1] * fps)) + 1)
    grid = np.arange(n_out) / fps
    return np.clip(np.searchsorted(t, grid + 1e-6, side="right") - 1, 0, len(t) - 1)


def _packed_to_planar(frame, channels: int) -> np.ndarray:
    """[C, N] float32 from a packed ('flt') frame; the only audio-frame conversion in the project (see above)."""
    data = frame.to_ndarray()  # packed: one plane of N * C interleaved samples, shape [1, N * C]
    return data.reshape(-1, channels).T


def _decode_audio(path: Path, origin: float | None, limits: MediaLimits, track: int = 0) -> tuple[np.ndarray, int]:
    """Audio track ``track`` as float32 [C, N] at its own rate (no resampling here: presets do that, once).
    ``origin`` is t = 0 on the container clock (the video's start); None: the track's own start."""
    import av

    with _open(path) as container:
        stream = container.streams.audio[track]
        sr = stream.codec_context.sample_rate
        if not sr:
            raise UnreadableMediaError(path, "audio stream has no sample rate")
        if not limits.min_sample_rate <= sr <= limits.max_sample_rate:
            raise MediaLimitError(path, f"audio sample rate {sr} Hz is outside "
                                        f"[{limits.min_sample_rate}, {limits.max_sample_rate}] Hz")
        if origin is None:
            origin = _stream_seconds(stream, stream.start_time) or 0.0
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        resampler = None
        max_samples = int(limits.max_duration_s * sr) + sr
        total = 0
        try:
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = frame.time
                if resampler is None and frame.sample_rate and frame.sample_rate != sr:
                    # The header's rate is not the decoded one (HE-AAC's SBR doubles it; a header can lie): the
                    # samples come out at the decoded rate, so that is the rate returned, checked like the header's.
                    if not limits.min_sample_rate <= frame.sample_rate <= limits.max_sample_rate:
                        raise MediaLimitError(path, f"audio decodes at {frame.sample_rate} Hz (header: {sr} Hz), "
                                                    f"outside [{limits.min_sample_rate}, {limits.max_sample_rate}] Hz")
                    sr = frame.sample_rate
                    max_samples = int(limits.max_duration_s * sr) + sr
                if resampler is None:
                    channels = len(frame.layout.channels)
                    # Packed float, never planar: PyAV reads planes through AVFrame.data, which holds 8 pointers, so
                    # converting a planar frame of 8 or more channels (7.1 AAC included) reads a null pointer and
                    # kills the process. A packed frame is one plane whatever the channel count.
                    resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=frame.sample_rate)
                for f in resampler.resample(frame):
                    chunks.append(_packed_to_planar(f, channels))
                    total += chunks[-1].shape[1]
                if total > max_samples:
                    raise MediaLimitError(path, f"audio lasts over the {limits.max_duration_s:.0f} s limit")
            if resampler is not None:
                for f in resampler.resample(None):
                    chunks.append(_packed_to_planar(f, channels))
        except av.error.FFmpegError as e:
            raise UnreadableMediaError(path, f"audio stream is truncated or corrupt: decoding stopped after "
                                             f"{total / sr:.2f} s ({e})") from e
        declared = _stream_seconds(stream, stream.duration)
    if not chunks or sum(c.shape[1] for c in chunks) == 0:
        raise EmptyMediaError(path, "audio stream has zero decodable samples")
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if declared:
        # Encoder padding beyond the declared duration (AAC pads its last frame) is not part of the signal.
        n_declared = int(round(declared * sr))
        if samples.shape[1] > n_declared:
            samples = samples[:, :n_declared]
        elif samples.shape[1] < _COMPLETE_SHARE * n_declared - 2048:
            raise UnreadableMediaError(path, f"audio stream is truncated: {samples.shape[1] / sr:.2f} s of the "
                                             f"{declared:.2f} s its header declares could be decoded")
    lead = int(round(((first_time if first_time is not None else origin) - origin) * sr))
    if lead > 0:
        samples = np.concatenate([np.zeros((samples.shape[0], lead), np.float32), samples], axis=1)
    elif lead < 0:
        samples = samples[:, -lead:]
    if samples.shape[1] == 0:
        raise EmptyMediaError(path, "audio stream has zero samples after the video starts")
    if samples.shape[1] / sr > limits.max_duration_s:
        raise MediaLimitError(path, f"audio lasts {samples.shape[1] / sr:.1f} s, over the {limits.max_duration_s:.0f} s limit")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise InvalidAudioError(path, f"audio contains {bad} NaN or infinite sample(s)")
    samples = np.ascontiguousarray(samples)
    samples.setflags(write=False)
    return samples, int(sr)


# ----------------------------------------------------------------------------------------------- presets


#: ``AudioPreset.decoder`` values. ``corrected``: the Clip's own track (aligned to the video, encoder padding cut,
#: float), resampled with soxr VHQ, channel mean. ``ffmpeg``: what the ``ffmpeg`` command line writes for
#: ``-f s16le|f32le -ar RATE -ac N`` (the MOVA toolkit's decode) — see :func:`ffmpeg_audio`.
AUDIO_DECODERS = ("corrected", "ffmpeg")


@dataclass(frozen=True)
class AudioPreset:
    """How a metric wants its audio. ``mono`` returns [N] (channel mean), otherwise [C, N].

    ``duration`` with ``fit``: 'pad' zero-pads or cuts to exactly that length, 'tile' repeats the signal until
    it is at least that long (DNSMOS), 'crop' only cuts.

    ``decoder='corrected'`` (default) works on the decoded Clip and resamples with soxr's very-high-quality mode.
    ``decoder='ffmpeg'`` reads the file again the way the MOVA toolkit's ``ffmpeg -i FILE -f s16le -ar RATE -ac
    CHANNELS`` call does (:func:`ffmpeg_audio`): ``ffmpeg_channels`` is the ``-ac`` value and ``sample_format``
    's16' or 'flt' the PCM it writes; ``mono`` then averages those channels (librosa's ``to_mono``, as IS/CLAP do
    after ``-ac 2``).
    """

    sample_rate: int
    mono: bool = True
    duration: float | None = None
    fit: str = "pad"
    name: str = ""
    decoder: str = "corrected"
    ffmpeg_channels: int = 1
    sample_format: str = "s16"

    def __post_init__(self):
        if self.decoder not in AUDIO_DECODERS:
            raise ValueError(f"AudioPreset.decoder must be one of {AUDIO_DECODERS}, got {self.decoder!r}")
        if self.sample_format not in ("s16", "flt"):
            raise ValueError(f"AudioPreset.sample_format must be 's16' or 'flt', got {self.sample_format!r}")


@dataclass(frozen=True)
class VideoPreset:
    """How a metric wants its frames: target fps (nearest earlier frame), output size (H, W) or short side,
    resize filter name (nearest, bilinear, bicubic, area, lanczos), optional center crop (H, W), max frames."""

    fps: float | None = None
    size: tuple[int, int] | None = None
    short_side: int | None = None
    filter: str = "bilinear"
    center_crop: tuple[int, int] | None = None
    max_frames: int | None = None
    name: str = ""


def resample_audio(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality resampling along the last axis (soxr VHQ)."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    import soxr

    if x.ndim == 1:
        return soxr.resample(x, sr_in, sr_out, quality="VHQ").astype(np.float32)
    return soxr.resample(x.T, sr_in, sr_out, quality="VHQ").T.astype(np.float32).copy()


def fit_length(x: np.ndarray, n: int, fit: str) -> np.ndarray:
    cur = x.shape[-1]
    if fit == "tile":
        if cur == 0:
            return np.zeros(x.shape[:-1] + (n,), dtype=x.dtype)
        while x.shape[-1] < n:
            x = np.concatenate([x, x], axis=-1)
        return x
    if cur >= n:
        return x[..., :n]
    if fit == "crop":
        return x
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - cur)]
    return np.pad(x, pad)


def ffmpeg_audio(path: str | Path, sample_rate: int, channels: int = 1, sample_format: str = "s16",
                 limits: MediaLimits = DEFAULT_LIMITS, track: int = 0) -> np.ndarray:
    """Audio track ``track`` (the one :func:`decode` chose, so every metric hears the same track; the ``ffmpeg``
    command line would take the track with the most channels) as ``ffmpeg -i PATH -f s16le|f32le -ar RATE -ac CHANNELS`` writes it, as float32 [C, N].

    This is the MOVA toolkit's decode (DNSMOS, IS/CLAP, AV-Align, LSE and cpCER all shell out to that command),
    reproduced through PyAV: the decoded frames go through FFmpeg's own resampler (``AudioResampler``, an
    ``aformat`` filter graph with the auto-inserted swresample, as the command line builds) to the target rate,
    channel layout and sample format in one step. As the command line, and unlike :func:`decode`: no alignment to
    the video's start (no leading silence, nothing dropped), no cut at the declared duration (AAC's end padding,
    43–705 samples on MOVA's clips, stays in); ``-ac 1`` is FFmpeg's downmix matrix ((L + R)·√½ for stereo, 3 dB
    above the channel mean; its centre/surround weights for more channels), and ``-ac 2`` of mono is L = R = x·√½.
    ``s16`` comes back as int16 / 32768 (exact in float32), what ``soundfile.read`` and ``librosa.load`` give for
    the WAV the toolkit writes.

    Byte identity holds with the FFmpeg that PyAV bundles; the ``ffmpeg`` binary of another FFmpeg release can
    differ where its decoder or resampler changed (measured against Debian's 5.1 binary: float output from PCM
    sources identical; AAC sources ±1 LSB on under 0.1 % of s16 samples, from the AAC decoder; s16 PCM sources
    resampled ±1–2 LSB on ~20–30 % of samples, from swresample's integer path); tests/unit/test_media.py pins
    these bounds against the installed binary.
    """
    import av

    path = Path(path)
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")
    chunks: list[np.ndarray] = []
    total, max_samples = 0, int(limits.max_duration_s * sample_rate) + sample_rate
    with _open(path) as container:
        if not container.streams.audio:
            raise MissingStreamError(path, "audio")
        if not 0 <= track < len(container.streams.audio):
            raise AudioTrackError(path, f"audio track {track} does not exist")
        stream = container.streams.audio[track]
        resampler = av.AudioResampler(format=sample_format, layout=layout, rate=sample_rate)
        try:
            for frame in container.decode(stream):
                for f in resampler.resample(frame):
                    chunks.append(f.to_ndarray().reshape(-1))  # packed: one plane, whatever the channel count
                    total += chunks[-1].size // channels
                if total > max_samples:
                    raise MediaLimitError(path, f"audio lasts over the {limits.max_duration_s:.0f} s limit")
            for f in resampler.resample(None):
                chunks.append(f.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            raise UnreadableMediaError(path, f"audio stream is truncated or corrupt ({e})") from e
    if not chunks or sum(c.size for c in chunks) == 0:
        raise EmptyMediaError(path, "audio stream has zero decodable samples")
    data = np.concatenate(chunks)
    x = data.astype(np.float32) / np.float32(32768.0) if sample_format == "s16" else data.astype(np.float32)
    x = np.ascontiguousarray(x.reshape(-1, channels).T)
    if not np.isfinite(x).all():
        raise InvalidAudioError(path, f"audio contains {int((~np.isfinite(x)).sum())} NaN or infinite sample(s)")
    return x


def apply_audio_preset(clip: Clip, preset: AudioPreset) -> np.ndarray:
    if not clip.has_audio:
        raise MissingStreamError(clip.path, "audio")
    if preset.decoder == "ffmpeg":
        x = ffmpeg_audio(clip.path, preset.sample_rate, preset.ffmpeg_channels, preset.sample_format,
                         track=clip.decode.audio_track or 0)
        x = x.mean(axis=0) if preset.mono else x
        if preset.duration is not None:
            x = fit_length(x, int(round(preset.duration * preset.sample_rate)), preset.fit)
        x = np.ascontiguousarray(x, dtype=np.float32)
        x.setflags(write=False)
        return x
    x = clip.audio
    if preset.mono:
        x = x.mean(axis=0)
    x = resample_audio(x, clip.sample_rate, preset.sample_rate)
    if preset.duration is not None:
        x = fit_length(x, int(round(preset.duration * preset.sample_rate)), preset.fit)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x.setflags(write=False)
    return x


def frame_indices(n_src: int, fps_src: float, fps_dst: float) -> np.ndarray:
    """Indices of source frames shown at each output instant (the frame on screen at t = k / fps_dst)."""
    duration = n_src / fps_src
    n_dst = max(1, int(math.floor(duration * fps_dst + 1e-6)))
    t = np.arange(n_dst) / fps_dst
    return np.minimum(np.floor(t * fps_src + 1e-6).astype(int), n_src - 1)


_PIL_FILTERS = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def resize_frames(frames: np.ndarray, size: tuple[int, int], filter: str = "bilinear") -> np.ndarray:
    """Resize [T,H,W,3] uint8 frames to (H, W) with a named filter ('area' uses OpenCV INTER_AREA)."""
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    if filter == "area":
        import cv2

        return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
    if filter not in _PIL_FILTERS:
        raise ValueError(f"unknown resize filter {filter!r}; choose one of {sorted(_PIL_FILTERS) + ['area']}")
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), resample=_PIL_FILTERS[filter])) for f in frames])


def apply_video_preset(clip: Clip, preset: VideoPreset) -> np.ndarray:
    if not clip.has_video:
        raise MissingStreamError(clip.path, "video")
    frames = clip.video
    if preset.fps is not None and abs(preset.fps - clip.fps) > 1e-6:
        frames = frames[frame_indices(frames.shape[0], clip.fps, preset.fps)]
    if preset.max_frames is not None:
        frames = frames[: preset.max_frames]
    if preset.size is not None:
        frames = resize_frames(frames, preset.size, preset.filter)
    elif preset.short_side is not None:
        h, w = frames.shape[1:3]
        s = preset.short_side / min(h, w)
        frames = resize_frames(frames, (max(1, round(h * s)), max(1, round(w * s))), preset.filter)
    if preset.center_crop is not None:
        ch, cw = preset.center_crop
        h, w = frames.shape[1:3]
        top, left = max(0, (h - ch) // 2), max(0, (w - cw) // 2)
        frames = frames[:, top : top + ch, left : left + cw]
    frames = np.ascontiguousarray(frames)
    frames.setflags(write=False)
    return frames


# ----------------------------------------------------------------------------------------------- encode


def encode(path: str | Path, video: np.ndarray | None, fps: float | None, audio: np.ndarray | None = None,
           sample_rate: int | None = None, *, lossless: bool = False, crf: int = 18,
           metadata: dict[str, str] | None = None, bitrate: int | None = None) -> Path:
    """Write a clip. Default: H.264 (yuv420p) + AAC in mp4. ``lossless``: RGB H.264 at qp 0 + PCM s16 in mkv.
    ``metadata``: container tags (e.g. ``comment``), used to label synthetic clips inside the file itself.
    ``bitrate``: average video bitrate in bit/s (x264 ABR) instead of the constant-quality ``crf`` (lossy only).

    The file is written to a temporary name and renamed, so a crash never leaves a half clip behind.
    ``audio`` is float32 [C, N] or [N] in [-1, 1].
    """
    path = Path(path)
    if lossless and path.suffix != ".mkv":
        raise ValueError(f"{path}: lossless clips are written as .mkv")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer: two processes (or threads) encoding the same clip must not share a temp file.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.partial{path.suffix}")
    options = {}
    if audio is not None and path.suffix.lower() in (".mp4", ".mov"):
        # The edit list that trims AAC priming/padding is written in the movie timescale (1 ms by default);
        # at the sample rate it is exact, so decoding returns exactly the samples written here.
        options["movie_timescale"] = str(int(sample_rate))
    try:
        _encode_to(tmp, path, video, fps, audio, sample_rate, lossless=lossless, crf=crf, bitrate=bitrate,
                   metadata=metadata, options=options)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return path


def _encode_to(tmp: Path, path: Path, video, fps, audio, sample_rate, *, lossless: bool, crf: int,
               bitrate: int | None, metadata: dict[str, str] | None, options: dict[str, str]) -> None:
    import av

    with av.open(str(tmp), mode="w", format=_muxer(path), options=options) as out:
        if metadata:
            out.metadata.update({str(k): str(v) for k, v in metadata.items()})
        vstream = astream = None
        if video is not None:
            if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
                raise ValueError("video must be uint8 [T, H, W, 3]")
            rate = Fraction(fps).limit_denominator(1001)
            # One encoder thread: frame-threaded x264 gave different bytes for the same frames depending on what the
            # process had encoded before, and clips must be byte-identical for content-addressed caching and resume.
            if lossless:
                vstream = out.add_stream("libx264rgb", rate=rate)
                vstream.pix_fmt = "rgb24"
                vstream.options = {"qp": "0", "preset": "veryfast", "threads": "1"}
            else:
                vstream = out.add_stream("libx264", rate=rate)
                vstream.pix_fmt = "yuv420p"
                vstream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
                if bitrate is not None:
                    vstream.options = {"preset": "veryfast", "threads": "1"}
                    vstream.bit_rate = int(bitrate)
            vstream.thread_count = 1
            h, w = video.shape[1:3]
            if not lossless and (h % 2 or w % 2):
                raise ValueError(f"H.264 yuv420p needs even frame sizes, got {w}x{h}")
            vstream.width, vstream.height = w, h
        if audio is not None:
            a = np.asarray(audio, dtype=np.float32)
            if a.ndim == 1:
                a = a[None]
            layout = "mono" if a.shape[0] == 1 else "stereo"
            if a.shape[0] > 2:
                raise ValueError("at most 2 audio channels are supported")
            astream = out.add_stream("pcm_s16le" if lossless else "aac", rate=int(sample_rate))
            astream.layout = layout
        if vstream is not None:
            for i, img in enumerate(video):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = i
                for packet in vstream.encode(frame):
                    out.mux(packet)
            for packet in vstream.encode():
                out.mux(packet)
        if astream is not None:
            _mux_audio(out, astream, a, int(sample_rate), lossless)


def _muxer(path: Path) -> str | None:
    """The muxer for a file name (the temporary name hides the extension from FFmpeg's guess)."""
    return {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}.get(path.suffix.lower())


def _mux_audio(out, stream, a: np.ndarray, sr: int, lossless: bool) -> None:
    import av

    a = np.clip(a, -1.0, 1.0)
    channels = a.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    frame_size = 1024
    for start in range(0, a.shape[1], frame_size):
        block = a[:, start : start + frame_size]
        if lossless:
            data = (block.T * 32767.0).round().astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        else:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=layout)
        frame.sample_rate = sr
        frame.pts = start
        frame.time_base = Fraction(1, sr)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def list_media(folder: str | Path) -> list[Path]:
    """Every video file under a folder, recursively, in a stable order."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
