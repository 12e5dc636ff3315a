"""Controlled defects as deterministic transforms of any decoded clip (synthetic or a user's own).

Each defect takes a :class:`~mova_eval.spec.Clip` and a strength and returns a new in-memory Clip plus an
:class:`AppliedDefect` record (kind, strength, seed, which stream changed, exact sample/frame positions). The
output is a pure function of (clip content, defect, strength, seed): the random streams are seeded from the
clip's content hash, the defect and the seed, and the new clip's ``content_hash`` is derived from the same, so
scores of defected clips are cached like any other.

A defect changes one stream only: audio defects keep every video frame, video defects keep every audio sample
(tests check both, and the exact positions each defect claims). Kinds and their strengths:

- ``audio_offset`` (ms, positive = audio late): the track keeps its length; the gap opened at one end is filled
  with the clip's **own ambience** (overlap-added pieces of its quietest 250 ms, power-preserving windows), not
  digital zeros — zeros confound background-noise metrics such as DNSMOS BAK. Samples pushed past the end are
  dropped. ``output[s:] == input[:N-s]`` exactly for ``s > 0``.
- ``swap_audio``: the audio of another item of the same run (chosen by seed among the others; its length fitted
  by cropping or its own ambience), so the sound no longer belongs to the picture or the prompt.
- ``mute``: all-zero audio (the stream is kept).
- ``noise`` (SNR dB): white Gaussian noise with exactly that power ratio against the whole track, added at the
  clip's level: neither clipped nor rescaled (defected clips live in memory as float; a peak above 1.0 is kept and
  recorded), because rescaling would change the loudness of the signal along with the SNR.
- ``time_stretch`` (factor r, > 1 = slower): pitch-preserving phase-vocoder stretch (librosa), RMS-matched to the
  original (the phase vocoder alone loses ~3 dB), then cropped or ambience-padded to the original length, so the
  sound drifts progressively out of sync at the same level.
- ``freeze`` (fraction p of the frames): frames ``[start, start+L)`` with ``L = round(p·T)`` centred in the clip
  all show frame ``start``; ``p = 1`` is a still image.
- ``shuffle`` (window w frames): frames are permuted inside consecutive blocks of w frames (never the identity
  within a block of two or more frames); the permutation is recorded.
- ``resolution`` (factor f): frames are downscaled to 1/f (area filter) and upscaled back (bilinear), so every
  metric sees the original size but the detail of a 1/f picture.
- ``recompress`` (kbit/s): the video is re-encoded as H.264 at that average bitrate through
  :func:`mova_eval.media.encode` and decoded again; the audio is the original samples (not re-encoded).
- ``wrong_language``: the speech is replaced by espeak-ng speech of a fixed sentence in another language (en ↔
  zh) rendered by the synthetic generator's speech engine at the clip's sample rate; speech items only.

Quirks: multi-channel audio is transformed channel-wise with one shared random stream (the offset, stretch and
noise are identical across channels in time). Defects never modify the input arrays (they are read-only views).
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence, TypeAlias

import numpy as np

from mova_eval.errors import ConfigError, MediaError, MissingStreamError, NotApplicable
from mova_eval.spec import Clip, SuiteItem

VERSION = "1"
AMBIENCE_WINDOW_S = 0.25
#: A defect strength: a number in the kind's unit, or None for kinds without one (ints are accepted where a float is).
Strength: TypeAlias = float | None
FOREIGN_SENTENCES = {"zh": "请把蓝色的文件夹带到楼上的会议室。", "en": "Please bring the blue folder to the meeting room upstairs."}


@dataclass(frozen=True)
class AppliedDefect:
    """What was done to a clip: enough to redo it exactly and to check that only ``stream`` changed."""

    kind: str
    strength: float | None
    unit: str
    seed: int
    stream: str                      # "audio" | "video"
    source_hash: str                 # content hash of the clean clip
    details: Mapping[str, Any] = field(default_factory=dict)
    version: str = VERSION

    @property
    def label(self) -> str:
        return format_strength(self.kind, self.strength, self.unit)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["details"] = dict(self.details)
        return d


@dataclass
class DefectContext:
    """What a defect may need besides the clip: the other clips of the run (swap) and the item (language)."""

    item: SuiteItem | None = None
    others: Mapping[str, Clip] = field(default_factory=dict)  # item id → clean clip (excluding this one)
    synth_seed: int = 0


def format_strength(kind: str, strength: float | None, unit: str) -> str:
    if strength is None:
        return kind
    if unit == "ms":
        return f"{kind} {strength:+g} ms"
    return f"{kind} {strength:g}{(' ' + unit) if unit else ''}"


def _rng(clip: Clip, kind: str, strength: Strength, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{clip.content_hash}|{kind}|{strength}|{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _derived_clip(clip: Clip, record: AppliedDefect, *, video: np.ndarray | None = None,
                  audio: np.ndarray | None = None, fps: float | None = None) -> Clip:
    video = clip.video if video is None else video
    audio = clip.audio if audio is None else audio
    for a in (video, audio):
        if a is not None and a.flags.writeable:
            a.setflags(write=False)
    blob = json.dumps(record.as_dict(), sort_keys=True, default=str)
    h = hashlib.sha256(f"{clip.content_hash}|defect|{blob}".encode()).hexdigest()
    fps = clip.fps if fps is None else fps
    durations: list[float] = []
    if video is not None and fps:
        durations.append(video.shape[0] / fps)
    if audio is not None and clip.sample_rate:
        durations.append(audio.shape[-1] / clip.sample_rate)
    kept = "video" if video is clip.video and fps == clip.fps else "audio" if audio is clip.audio else None
    # A video defect leaves the file's audio as it is, so metrics that re-read the audio from the file (the MOVA
    # toolkit's ffmpeg decode) read the clean file; an audio defect has no file until one is written
    # (``materialize_audio``).
    path = clip.path if kept == "audio" else f"{clip.path}#{record.label}"
    return Clip(path=path, content_hash=h, video=video, fps=fps, audio=audio,
                sample_rate=clip.sample_rate, duration=max(durations) if durations else 0.0,
                _memo=_SharedMemo(clip._memo, kept) if kept else {})


class _SharedMemo(dict[tuple[Any, ...], Any]):
    """A defected clip's memo: entries of the stream the defect kept (presets, derived features) live in the clean
    clip's memo, so they are computed once for the clean clip and all of its variants; the rest is private."""

    def __init__(self, parent: dict[tuple[Any, ...], Any], stream: str):
        super().__init__()
        self.parent, self.stream = parent, stream

    def _shared(self, key: object) -> bool:
        return isinstance(key, tuple) and bool(key) and key[0] == self.stream

    def __contains__(self, key: object) -> bool:
        return key in self.parent if self._shared(key) else super().__contains__(key)

    def __getitem__(self, key: tuple[Any, ...]) -> Any:
        return self.parent[key] if self._shared(key) else super().__getitem__(key)

    def __setitem__(self, key: tuple[Any, ...], value: Any) -> None:
        if self._shared(key):
            self.parent[key] = value
        else:
            super().__setitem__(key, value)


# ----------------------------------------------------------------------------------------------- audio helpers


def quietest_window(audio: np.ndarray, sr: int, seconds: float = AMBIENCE_WINDOW_S) -> tuple[int, int]:
    """(start, length) of the lowest-RMS window of the mono mixdown, on a 10 ms grid: the clip's room tone."""
    x = np.asarray(audio, np.float64).mean(axis=0)
    n = x.shape[0]
    win = int(min(max(1, round(seconds * sr)), max(1, n // 4)))
    if n <= win:
        return 0, n
    hop = max(1, sr // 100)
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, n - win + 1, hop)
    energy = c[starts + win] - c[starts]
    s = int(starts[int(np.argmin(energy))])
    return s, win


def ambience(audio: np.ndarray, sr: int, n_out: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, dict[str, Any]]:
    """``n_out`` samples [C, n_out] of the clip's own background: pieces of its quietest window at random
    positions, overlap-added with sine windows at 50 % overlap (their squares sum to one, so the power of
    uncorrelated pieces is kept). Digital silence stays digital silence (that *is* the clip's ambience)."""
    c = audio.shape[0]
    start, win = quietest_window(audio, sr)
    src = np.asarray(audio[:, start : start + win], np.float64)
    if n_out <= 0:
        return np.zeros((c, 0), np.float32), {"ambience_window": [start, win]}
    piece = int(max(2, min(win, 2 * (win // 4))))  # even, at most the window
    piece -= piece % 2
    hop = piece // 2
    w = np.sin(np.pi * (np.arange(piece) + 0.5) / piece)
    total = n_out + 2 * piece  # one piece of margin each side: every output sample lies under two windows
    out = np.zeros((c, total), np.float64)
    for lo in range(0, total - piece + 1, hop):
        off = int(rng.integers(0, win - piece + 1))
        out[:, lo : lo + piece] += src[:, off : off + piece] * w
    return out[:, piece : piece + n_out].astype(np.float32), {"ambience_window": [int(start), int(win)]}


def fit_audio(x: np.ndarray, n: int, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Crop to n samples, or append the track's own ambience up to n."""
    if x.shape[1] >= n:
        return x[:, :n], {"fit": "crop", "samples_dropped": int(x.shape[1] - n)}
    pad, info = ambience(x, sr, n - x.shape[1], rng)
    return np.concatenate([x, pad], axis=1), {"fit": "ambience_pad", "samples_padded": int(n - x.shape[1]), **info}


def _audio(clip: Clip) -> tuple[np.ndarray, int]:
    """The clip's audio [C, N] and sample rate, or MissingStreamError when it has none."""
    if clip.audio is None or not clip.has_audio:
        raise MissingStreamError(clip.path, "audio")
    if not clip.sample_rate:
        raise MediaError(clip.path, "audio without a sample rate")
    return clip.audio, clip.sample_rate


def _video(clip: Clip) -> np.ndarray:
    """The clip's frames [T, H, W, 3], or MissingStreamError when it has none."""
    if clip.video is None or not clip.has_video:
        raise MissingStreamError(clip.path, "video")
    return clip.video


# ----------------------------------------------------------------------------------------------- defect kinds


class DefectKind:
    """One kind of defect. ``magnitude`` orders strengths from weak to strong (for monotonicity checks)."""

    name: ClassVar[str]
    stream: ClassVar[str]
    unit: ClassVar[str] = ""
    strengths: ClassVar[tuple[Strength, ...]] = (None,)       # the default battery
    quick: ClassVar[tuple[Strength, ...]] = (None,)         # a short battery for tests and --quick
    description: ClassVar[str] = ""

    def magnitude(self, strength: Strength) -> float:
        return 1.0 if strength is None else abs(float(strength))

    def check(self, strength: object) -> None:
        if strength is not None and not isinstance(strength, (int, float)):
            raise ConfigError(f"defect {self.name}: strength must be a number, got {strength!r}")
        if strength is None and self.unit:
            raise ConfigError(f"defect {self.name}: needs a strength ({self.unit})")

    def _number(self, strength: object) -> float:
        """The strength as a float; a ConfigError when it is None or not a number."""
        if not isinstance(strength, (int, float)):
            raise ConfigError(f"defect {self.name}: needs a strength ({self.unit or 'a number'})")
        return float(strength)

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        raise NotImplementedError

    def _record(self, clip: Clip, strength: Strength, seed: int, **details: Any) -> AppliedDefect:
        return AppliedDefect(self.name, None if strength is None else float(strength), self.unit, int(seed),
                             self.stream, clip.content_hash, details)


class AudioOffset(DefectKind):
    name, stream, unit = "audio_offset", "audio", "ms"
    strengths = (-500, -200, -80, -40, 40, 80, 200, 500)
    quick = (80, 200)
    description = "audio shifted against the picture (positive: late), gap filled with the clip's ambience"

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        audio, sr = _audio(clip)
        a = np.asarray(audio, np.float32)
        n = a.shape[1]
        shift = int(round(self._number(strength) * sr / 1000.0))
        s = min(abs(shift), n)
        fill, info = ambience(a, sr, s, _rng(clip, self.name, strength, seed))
        if shift >= 0:
            out = np.concatenate([fill, a[:, : n - s]], axis=1)
            region = [0, s]
        else:
            out = np.concatenate([a[:, s:], fill], axis=1)
            region = [n - s, n]
        rec = self._record(clip, strength, seed, shift_samples=shift, padded_region=region, **info)
        return _derived_clip(clip, rec, audio=np.ascontiguousarray(out)), rec


class SwapAudio(DefectKind):
    name, stream = "swap_audio", "audio"
    description = "audio taken from another item of the run"

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        audio, sr = _audio(clip)
        own = ctx.item.id if ctx.item else None
        donors = sorted(k for k, c in ctx.others.items() if k != own and c.has_audio)
        if not donors:
            raise NotApplicable("swap_audio needs another clip with audio in the run")
        rng = _rng(clip, self.name, strength, seed)
        donor_id = donors[int(rng.integers(0, len(donors)))]
        donor = ctx.others[donor_id]
        from mova_eval import media

        donor_audio, donor_sr = _audio(donor)
        x = media.resample_audio(np.asarray(donor_audio, np.float32), donor_sr, sr)
        c = audio.shape[0]
        x = np.repeat(x.mean(axis=0, keepdims=True), c, axis=0) if x.shape[0] != c else x
        out, info = fit_audio(x, audio.shape[1], sr, rng)
        rec = self._record(clip, strength, seed, donor_item=donor_id, donor_hash=donor.content_hash, **info)
        return _derived_clip(clip, rec, audio=np.ascontiguousarray(out, dtype=np.float32)), rec


class Mute(DefectKind):
    name, stream = "mute", "audio"
    description = "all-zero audio (the stream is kept)"

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        audio, sr = _audio(clip)
        rec = self._record(clip, strength, seed)
        return _derived_clip(clip, rec, audio=np.zeros_like(audio, dtype=np.float32)), rec


class Noise(DefectKind):
    name, stream, unit = "noise", "audio", "dB SNR"
    strengths = (30, 20, 10, 0)
    quick = (0,)
    description = "white Gaussian noise at an exact SNR against the whole track"

    def magnitude(self, strength: Strength) -> float:
        return -self._number(strength)  # lower SNR is the stronger defect

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        audio, sr = _audio(clip)
        a = np.asarray(audio, np.float64)
        p_signal = float(np.mean(a**2))
        if p_signal <= 0:
            raise NotApplicable(f"{clip.path}: digital silence has no SNR")
        noise = _rng(clip, self.name, strength, seed).standard_normal(a.shape)
        noise *= math.sqrt(p_signal / 10 ** (self._number(strength) / 10) / float(np.mean(noise**2)))
        out = a + noise
        rec = self._record(clip, strength, seed, signal_power=p_signal, noise_power=float(np.mean(noise**2)),
                           peak=float(np.abs(out).max()))
        return _derived_clip(clip, rec, audio=out.astype(np.float32)), rec


class TimeStretch(DefectKind):
    name, stream, unit = "time_stretch", "audio", "x"
    strengths = (1.05, 1.1, 1.25)
    quick = (1.1,)
    description = "pitch-preserving stretch (phase vocoder) by a factor, cropped/padded to the original length"

    def magnitude(self, strength: Strength) -> float:
        return abs(math.log(self._number(strength)))

    def check(self, strength: object) -> None:
        super().check(strength)
        if not 0.2 <= self._number(strength) <= 5:
            raise ConfigError(f"defect time_stretch: factor must be in [0.2, 5], got {strength}")

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        audio, sr = _audio(clip)
        import librosa

        r = self._number(strength)
        a = np.asarray(audio, np.float32)
        y = np.stack([librosa.effects.time_stretch(ch, rate=1.0 / r) for ch in a]).astype(np.float64)
        p_in, p_out = float(np.mean(a.astype(np.float64) ** 2)), float(np.mean(y**2))
        gain = math.sqrt(p_in / p_out) if p_out > 0 else 1.0
        y = (y * gain).astype(np.float32)
        out, info = fit_audio(y, a.shape[1], sr, _rng(clip, self.name, strength, seed))
        rec = self._record(clip, strength, seed, method="librosa.effects.time_stretch (phase vocoder), RMS-matched",
                           gain=gain, stretched_samples=int(y.shape[1]), **info)
        return _derived_clip(clip, rec, audio=np.ascontiguousarray(out, dtype=np.float32)), rec


class Freeze(DefectKind):
    name, stream, unit = "freeze", "video", "of frames"
    strengths = (0.25, 0.5, 1.0)
    quick = (1.0,)
    description = "a centred run of frames holds its first frame"

    def check(self, strength: object) -> None:
        super().check(strength)
        if not 0 < self._number(strength) <= 1:
            raise ConfigError(f"defect freeze: fraction must be in (0, 1], got {strength}")

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        video = _video(clip)
        t = video.shape[0]
        length = max(1, int(round(self._number(strength) * t)))
        start = (t - length) // 2
        v = np.array(video)
        v[start : start + length] = v[start]
        rec = self._record(clip, strength, seed, frozen_frames=[int(start), int(start + length)])
        return _derived_clip(clip, rec, video=v), rec


class Shuffle(DefectKind):
    name, stream, unit = "shuffle", "video", "frame window"
    strengths = (2, 12, 48)
    quick = (12,)
    description = "frames permuted inside consecutive windows"

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        video = _video(clip)
        w = int(self._number(strength))
        if w < 2:
            raise ConfigError(f"defect shuffle: window must be at least 2 frames, got {strength}")
        t = video.shape[0]
        rng = _rng(clip, self.name, strength, seed)
        perm = np.arange(t)
        for lo in range(0, t, w):
            hi = min(t, lo + w)
            if hi - lo < 2:
                continue
            p = np.arange(lo, hi)
            while np.array_equal(p, np.arange(lo, hi)):
                p = lo + rng.permutation(hi - lo)
            perm[lo:hi] = p
        rec = self._record(clip, strength, seed, permutation=perm.tolist())
        return _derived_clip(clip, rec, video=np.ascontiguousarray(video[perm])), rec


class Resolution(DefectKind):
    name, stream, unit = "resolution", "video", "x smaller"
    strengths = (2, 4, 8)
    quick = (4,)
    description = "downscaled by a factor (area) and upscaled back (bilinear)"

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        video = _video(clip)
        from mova_eval import media

        f = self._number(strength)
        if f < 1:
            raise ConfigError(f"defect resolution: factor must be ≥ 1, got {strength}")
        h, w = video.shape[1:3]
        small = (max(1, int(round(h / f))), max(1, int(round(w / f))))
        v = media.resize_frames(media.resize_frames(np.asarray(video), small, "area"), (h, w), "bilinear")
        rec = self._record(clip, strength, seed, low_size=list(small), size=[h, w])
        return _derived_clip(clip, rec, video=np.ascontiguousarray(v)), rec


class Recompress(DefectKind):
    name, stream, unit = "recompress", "video", "kbit/s"
    strengths = (400, 100, 25)
    quick = (25,)
    description = "video re-encoded as H.264 at an average bitrate (audio untouched)"

    def magnitude(self, strength: Strength) -> float:
        return 1.0 / self._number(strength)

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        video = _video(clip)
        from mova_eval import media

        kbps = self._number(strength)
        if not clip.fps:
            raise MediaError(clip.path, "video without a frame rate")
        fps = clip.fps
        v = np.asarray(video)
        h, w = v.shape[1:3]
        if h % 2 or w % 2:  # H.264 yuv420p needs even sizes: re-encode the even crop, keep the odd edge as is
            v = v[:, : h - h % 2, : w - w % 2]
        with tempfile.TemporaryDirectory(prefix="mova-defect-") as tmp:
            path = Path(tmp) / "recompressed.mp4"
            media.encode(path, np.ascontiguousarray(v), fps, None, None, bitrate=int(kbps * 1000))
            size = path.stat().st_size
            frames = media.decode(path, audio=False).video
        if frames is None:
            raise MediaError(path, "the re-encoded video decoded without frames")
        out = np.array(video)
        n = min(frames.shape[0], out.shape[0])
        out[:n, : frames.shape[1], : frames.shape[2]] = frames[:n]
        rec = self._record(clip, strength, seed, file_bytes=int(size),
                           measured_kbps=round(size * 8 / 1000 / max(video.shape[0] / fps, 1e-9), 1),
                           frames_decoded=int(frames.shape[0]))
        return _derived_clip(clip, rec, video=out), rec


class WrongLanguage(DefectKind):
    name, stream = "wrong_language", "audio"
    description = "speech replaced by espeak-ng speech of a fixed sentence in another language (en <-> zh)"

    def apply(self, clip: Clip, strength: Strength, seed: int, ctx: DefectContext) -> tuple[Clip, AppliedDefect]:
        audio, sr = _audio(clip)
        item = ctx.item
        if item is None or not item.has_speech or item.language not in ("en", "zh"):
            raise NotApplicable("wrong_language applies to English or Chinese speech items only")
        from dataclasses import replace

        from mova_eval.generators import synthetic

        other = "zh" if item.language == "en" else "en"
        foreign = replace(item, language=other, speech_text=FOREIGN_SENTENCES[other], speaker="", prompt="")
        spec = synthetic.RenderSpec(duration=audio.shape[1] / sr, fps=clip.fps or 24.0,
                                    sample_rate=int(sr))
        x, plan = synthetic.clean_audio(foreign, int(seed), spec)
        x = np.asarray(x, np.float32)[None]
        c = audio.shape[0]
        x = np.repeat(x, c, axis=0)
        out, info = fit_audio(x, audio.shape[1], sr, _rng(clip, self.name, strength, seed))
        rec = self._record(clip, strength, seed, language=other, text=FOREIGN_SENTENCES[other],
                           tts=getattr(plan, "engine", ""), **info)
        return _derived_clip(clip, rec, audio=np.ascontiguousarray(out, dtype=np.float32)), rec


def materialize_audio(clip: Clip, folder: str | Path) -> Clip:
    """Write a defected clip's audio as an AAC mp4 (``media.encode``, the way generators deliver sound) and point
    ``clip.path`` at it, for metrics that decode the audio from the file themselves (``AudioPreset.decoder =
    'ffmpeg'``). Their audio then went through AAC once more than the clean clip's: a generation loss of the
    codec, not of the defect. The in-memory arrays are unchanged."""
    from mova_eval import media

    path = Path(folder) / f"{clip.content_hash[:24]}.mp4"
    if not path.is_file():
        media.encode(path, None, None, np.asarray(clip.audio), clip.sample_rate)
    clip.path = str(path)
    return clip


KINDS: dict[str, DefectKind] = {k.name: k() for k in (AudioOffset, SwapAudio, Mute, Noise, TimeStretch, Freeze,
                                                       Shuffle, Resolution, Recompress, WrongLanguage)}


def get(kind: str) -> DefectKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown defect {kind!r}; known: {sorted(KINDS)}") from None


def apply(clip: Clip, kind: str, strength: Strength = None, *, seed: int = 0, context: DefectContext | None = None
          ) -> tuple[Clip, AppliedDefect]:
    """Apply one defect: (new clip, record). Raises NotApplicable / MissingStreamError when it cannot apply."""
    k = get(kind)
    k.check(strength)
    return k.apply(clip, strength, seed, context or DefectContext())


def battery(kinds: Sequence[str] | None = None, *, quick: bool = False,
            strengths: Mapping[str, Sequence[Strength]] | None = None) -> list[tuple[str, Strength]]:
    """(kind, strength) pairs: every kind's default (or quick) strengths, overridden per kind by ``strengths``."""
    out: list[tuple[str, Strength]] = []
    for name in kinds or list(KINDS):
        k = get(name)
        values = (strengths or {}).get(name) or (k.quick if quick else k.strengths)
        for s in values:
            k.check(s)
            out.append((name, s))
    return out
