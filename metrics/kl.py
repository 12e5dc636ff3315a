"""KL divergence between the AudioSet class distributions of the reference audio and the generated audio.

As av-benchmark's ``kl.py`` (the AudioGen formulation, also in MMAudio's evaluation): both tracks go through PANNs
Cnn14 16 kHz (``Cnn14_16k_mAP=0.438.pth``) as mono 16 kHz audio with the mean removed, and per pair
``KL(p_ref ‖ p_gen) = Σ_c p_ref,c (log p_ref,c − log p_gen,c)`` with p = softmax of the 527 logits (float64).
av-benchmark's ``F.kl_div(log_softmax(gen), log_softmax(ref), reduction='sum', log_target=True) / N`` is the mean of
these per-pair values, so ``all`` pools every pair (POOLED_MEAN). Lower is better.

Only items with ``reference_audio`` (Verse-Bench: set2 with its ground-truth wavs) apply. Option ``duration`` cuts
both tracks to that many seconds (av-benchmark's ``audio_length``); by default each whole track is used.
Silence is scored; tracks shorter than Cnn14's 32 STFT frames (0.31 s) are rejected with a MediaError.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from mova_eval.errors import MediaError
from mova_eval.media import AudioPreset
from mova_eval.metrics.base import POOLED_MEAN, Card, ItemScore, Metric, MetricInfo, Output, require_package
from mova_eval.metrics.features import panns  # light: registers the Cnn14 weights; torch loads lazily
from mova_eval.metrics.options import option
from mova_eval.spec import Clip, SuiteItem

SAMPLE_RATE = 16000
MIN_SAMPLES = 31 * 160


def kl_softmax(ref_logits: np.ndarray, gen_logits: np.ndarray) -> np.ndarray:
    """Per-row KL(softmax(ref) ‖ softmax(gen)) in float64."""
    def log_softmax(x):
        x = np.asarray(x, dtype=np.float64)
        x = x - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    lr, lg = log_softmax(ref_logits), log_softmax(gen_logits)
    return (np.exp(lr) * (lr - lg)).sum(axis=-1)


@dataclass(frozen=True)
class KLOptions:
    """``metrics.options.kl.*``."""

    duration: float | None = option(None, help="cut both clips to this many seconds (null: whole clip)")


class KLPanns(Metric):
    Options = KLOptions
    info = MetricInfo(
        name="kl",
        outputs=(Output("kl_panns", "lower", "nats", "KL(reference ‖ generated) over PANNs AudioSet softmax"),),
        description="Paired KL divergence of AudioSet class distributions (PANNs Cnn14 16 kHz)",
        needs=frozenset({"audio", "reference_audio"}),
        extra="audio",
        packages=("torch",),
        weights=("panns_cnn14_16k",),
        aggregation=POOLED_MEAN,
        version="1",
        reference="av-benchmark av_bench/metrics/kl.py (softmax KL, PANNs 16 kHz)",
        card=Card(
            ranges=(
                ('kl_panns', '[0, ∞) nats'),
            ),
            scale='×1',
            tables=(
                "MMAudio paper tables (KL-PANNs, av-benchmark variant, paired with VGGSound ground truth) — MOVA "
                "reports no KL",
            ),
            docs='docs/metrics/is_kl.md',
        ),
    )

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.duration = self.opts.duration
        self._model = None
        self._ref_logits: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        require_package("kl", "torch", "audio")
        self._model = panns.load_cnn14(SAMPLE_RATE, self.device, self.context)

    def _prepare(self, clip: Clip) -> np.ndarray:
        x = clip.audio_for(AudioPreset(SAMPLE_RATE, mono=True, name="panns16k"))
        if self.duration is not None:
            x = x[: int(round(float(self.duration) * SAMPLE_RATE))]
        if x.shape[-1] < MIN_SAMPLES:
            raise MediaError(clip.path, f"audio lasts {x.shape[-1] / SAMPLE_RATE:.3f} s; Cnn14 at 16 kHz needs at "
                                        f"least {MIN_SAMPLES / SAMPLE_RATE:.2f} s")
        return x - x.mean()

    def _logits(self, clip: Clip) -> np.ndarray:
        return panns.run_cnn14(self._model, self._prepare(clip)[None])["logits"][0]

    def _reference(self, path: str) -> np.ndarray:
        with self._lock:
            if path in self._ref_logits:
                return self._ref_logits[path]
        from mova_eval import media

        logits = self._logits(media.decode(path, video=False))
        with self._lock:
            self._ref_logits[path] = logits
        return logits

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        if self._model is None:
            self.load()
        ref = self._reference(item.reference_audio)
        gen = self._logits(clip)
        kl = float(kl_softmax(ref, gen))
        return ItemScore({"kl_panns": kl}, details={"reference_audio": item.reference_audio})
