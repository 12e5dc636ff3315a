"""The data that flows through a run: suite items, generation requests/results and decoded clips.

These are plain dataclasses so any stage can be called alone in a test (DESIGN.md, "The flow of one run").
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar, cast

import numpy as np

if TYPE_CHECKING:
    from mova_eval.media import AudioPreset, VideoPreset

_T = TypeVar("_T")

LANGUAGES = ("en", "zh", "none")


@dataclass(frozen=True)
class SuiteItem:
    """One prompt of a suite.

    ``category`` is the set the item belongs to (Verse-Bench: set1/set2/set3); MOVA aggregates per category.
    ``speech_text`` is the reference transcript (empty → no speech). Multi-speaker references use
    ``[S01] … [S02] …`` tags; ``num_speakers`` counts them (None when the item has no speech).
    """

    id: str
    category: str
    prompt: str
    language: str = "none"
    video_prompt: str = ""
    audio_prompts: tuple[str, ...] = ()
    speech_text: str = ""
    speaker: str = ""
    first_frame: str | None = None
    reference_audio: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_speech(self) -> bool:
        return bool(self.speech_text.strip())

    @property
    def num_speakers(self) -> int | None:
        if not self.has_speech:
            return None
        import re

        tags = set(re.findall(r"\[S(\d+)\]", self.speech_text))
        return len(tags) if tags else 1

    def fingerprint(self) -> str:
        """Hash of every field, so cached per-item scores are invalidated when the item text changes."""
        blob = json.dumps(asdict(self), sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    items: tuple[SuiteItem, ...]
    source: str
    aggregation: str = "category_mean"  # how `all` is formed from categories (MOVA: mean of category means)
    description: str = ""
    references: Mapping[str, str] = field(default_factory=dict)  # named reference statistics the suite uses
    #: how a folder of clips is matched to the items: ``id`` (a file name starts with the item id) or
    #: ``mova_numbered`` (MyBench, as MOVA's eval_cpcer.py: files ``^(\d+)_…`` sorted by that number pair with the
    #: items in suite order, and their count must equal the number of items)
    file_match: str = "id"

    def categories(self) -> list[str]:
        seen: dict[str, None] = {}
        for it in self.items:
            seen.setdefault(it.category, None)
        return list(seen)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class GenRequest:
    """What a generator is asked to make. ``request_id`` is unique within a run (item id + seed)."""

    request_id: str
    item: SuiteItem
    seed: int
    duration_s: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    first_frame: str | None = None
    out_path: str | None = None  # where the generator should write the clip (the runner chooses it)


@dataclass
class GenResult:
    """A generated clip (``path``) or the reason there is none (``error``); ``provenance`` says how it was made."""

    request_id: str
    path: str | None
    error: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.path is not None and self.error is None


@dataclass(frozen=True)
class DecodeInfo:
    """How :func:`mova_eval.media.decode` turned a file into a Clip: the choices it made, for the run log.

    ``audio_track`` indexes the file's audio streams (what ``media.audio_track=N`` names), None when no audio was
    decoded; ``audio_track_rule`` says why that track. ``rotation`` is the counter-clockwise turn (degrees) applied
    to make frames upright, after a horizontal mirror when ``mirrored``; ``width``/``height`` are the displayed
    size. ``clipping_fraction`` is the share of audio samples at or beyond 0.99 of full scale."""

    audio_track: int | None = None
    audio_tracks: int = 0
    audio_track_rule: str = ""
    rotation: int = 0
    mirrored: bool = False
    orientation_source: str = ""
    width: int | None = None
    height: int | None = None
    clipping_fraction: float | None = None
    warnings: tuple[str, ...] = ()

    def cache_token(self) -> str:
        """What, beyond the file's bytes, decides the decoded content: empty for a single-track, upright file (so
        cache keys of such files are unchanged), else the track and orientation."""
        parts = []
        if self.audio_tracks > 1:
            parts.append(f"audio_track={self.audio_track}")
        if self.rotation or self.mirrored:
            parts.append(f"orientation={self.rotation}{'m' if self.mirrored else ''}")
        return ";".join(parts)


@dataclass
class Clip:
    """A decoded clip, shared by every metric. Arrays are read-only views; presets are memoised per clip.

    video: uint8 [T, H, W, 3] or None; audio: float32 [C, N] or None.
    """

    path: str
    content_hash: str
    video: np.ndarray | None
    fps: float | None
    audio: np.ndarray | None
    sample_rate: int | None
    duration: float
    decode: DecodeInfo = field(default_factory=DecodeInfo)
    _memo: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def has_video(self) -> bool:
        return self.video is not None and self.video.shape[0] > 0

    @property
    def has_audio(self) -> bool:
        return self.audio is not None and self.audio.shape[-1] > 0

    def audio_for(self, preset: AudioPreset) -> np.ndarray:
        """Audio under an :class:`mova_eval.media.AudioPreset`, computed once per clip."""
        from mova_eval import media

        key = ("audio", preset)
        if key not in self._memo:
            self._memo[key] = media.apply_audio_preset(self, preset)
        return cast(np.ndarray, self._memo[key])

    def derived(self, stream: str, name: str, compute: Callable[[], _T]) -> _T:
        """A value computed from one stream only (``"video"`` or ``"audio"``: optical flow, onsets…), once per clip.
        A defected copy of a clip (:mod:`mova_eval.defects`) shares these entries for the stream it left unchanged,
        so e.g. the optical flow of a clip is computed once for all of its audio defects."""
        if stream not in ("video", "audio"):
            raise ValueError(f"stream must be 'video' or 'audio', not {stream!r}")
        key = (stream, "derived", name)
        if key not in self._memo:
            self._memo[key] = compute()
        return cast(_T, self._memo[key])

    def video_for(self, preset: VideoPreset) -> np.ndarray:
        """Frames under a :class:`mova_eval.media.VideoPreset`, computed once per clip."""
        from mova_eval import media

        key = ("video", preset)
        if key not in self._memo:
            self._memo[key] = media.apply_video_preset(self, preset)
        return cast(np.ndarray, self._memo[key])
