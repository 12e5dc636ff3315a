"""Inception Score over audio with the PANNs Cnn14 AudioSet tagger, in two named modes.

``mode: mova`` (default) — as the MOVA toolkit (``metrics/audio_is_clap/IS.py`` + ``eval_audio_is_clap.py``): mono
32 kHz audio zero-padded or cut to exactly 10 s, ``Cnn14_mAP=0.431.pth``, the 527 sigmoid ``clipwise_output`` turned back into logits
(``log p − log(1−p)``, p clamped to [1e-8, 1−1e-8]), softmax, rows renormalised, then
``IS = exp(mean_x Σ_y p(y|x)·(log(p(y|x)+1e-10) − log(p(y)+1e-10)))`` over every clip of a category in ONE split.
``all`` is the mean of the category values, as MOVA reports (IS grows with set size, so it is not pooled).
``is_std`` has no value in this mode (one split).

Decode in mode mova (option ``decode``): ``mova`` (default) is the toolkit's ``extract_audio_from_video_memory``:
``ffmpeg -i CLIP -f wav -acodec pcm_s16le -ar 32000 -ac 2 pipe:1`` then ``librosa.load(sr=32000, mono=True)``,
reproduced by :func:`mova_eval.media.ffmpeg_audio` (:data:`MOVA_PRESET`, shared with ``clap_mova``: one decode
serves both, as in the toolkit). Its quirks, all kept: FFmpeg's resampler; the track is forced to **stereo** first
and then averaged, so a mono source comes out at −3 dB (L = R = x·√½, mean x·√½) and a 5.1 source through FFmpeg's
downmix matrix; s16 samples (int16 / 32768); AAC end padding kept (no cut at the declared duration, no alignment to
the video's start). ``corrected`` is our Clip's track (aligned, padding cut, float), channel mean, soxr VHQ: its
outputs are named ``is_corrected`` / ``is_std_corrected`` so the two decodes never share a name. Parity with the
toolkit's own functions (decoded samples, padded input, Cnn14 probabilities, IS) is in
tests/metrics/test_mova_decode_parity.py. The toolkit computes its logit→softmax and IS in float32; we use float64
(measured difference far below the 1e-4 asserted there).

``mode: av_bench`` — as av-benchmark / torch-fidelity ``isc``: mono 16 kHz audio (mean removed; the whole clip, or cut
to ``duration`` seconds), ``Cnn14_16k_mAP=0.438.pth`` logits, float64 softmax, rows shuffled with
``RandomState(2020)``, 10 splits; ``is_av_bench`` is the mean and ``is_std_av_bench`` the (N−1) standard deviation over splits, per
category and over all clips pooled. Its outputs are named ``is_av_bench`` / ``is_std_av_bench``: the two modes are
different protocols (another checkpoint, sample rate and split rule) and never share an output name (before
metric version 3 both wrote ``is``).

Weights: the class-level availability check names the 32 kHz checkpoint (the default mode); ``av_bench`` mode checks
the 16 kHz one when it loads, and an absent file is reported with its fetch command the same way.

Bad input: silence is scored (it is a legitimate, if poor, generation; Cnn14 sees −100 dB everywhere); clips shorter
than Cnn14's 32 STFT frames are rejected in ``av_bench`` mode (MOVA mode pads everything to 10 s); any input rate is
resampled with FFmpeg's resampler (``decode: mova``) or soxr (``corrected``, and ``av_bench`` mode), see
docs/metrics/is_kl.md.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from mova_eval.errors import ConfigError, MediaError
from mova_eval.media import AudioPreset, fit_length
from mova_eval.metrics.base import SET_LEVEL, Card, MetricInfo, Output, SetLevelMetric, SetResult, require_package
from mova_eval.metrics.features import panns  # light: registers the Cnn14 weights; torch loads lazily
from mova_eval.metrics.options import SET, option, token_part
from mova_eval.spec import Clip, SuiteItem

MODES = ("mova", "av_bench")
MIN_FRAMES = 32  # five 2× time poolings must leave at least one frame
MOVA_SAMPLES = 320_000  # IS.py's _ten_seconds: 10 s at 32 kHz
#: The MOVA toolkit's IS/CLAP decode (eval_audio_is_clap.py ``extract_audio_from_video_memory``): ffmpeg to 32 kHz
#: stereo s16, then librosa's channel mean. Shared with ``clap_mova`` (the toolkit hands the same array to both).
MOVA_PRESET = AudioPreset(32000, mono=True, name="mova32k_ffmpeg_s16_ac2", decoder="ffmpeg", ffmpeg_channels=2,
                          sample_format="s16")
#: our corrected decode in mode mova: the Clip's track, channel mean, soxr VHQ, padded or cut to 10 s
CORRECTED_PRESET = AudioPreset(32000, mono=True, duration=10.0, fit="pad", name="panns32k_10s")
DECODES = ("mova", "corrected")
_IS = Output("is", "higher", "", "Inception Score over PANNs Cnn14 AudioSet classes")
_IS_STD = Output("is_std", "none", "", "std of IS over splits (no value: mode mova uses one split)")
_IS_CORRECTED = Output("is_corrected", "higher", "",
                       "IS in MOVA's mode on our corrected decode (soxr, channel mean), not the toolkit's ffmpeg decode")
_IS_STD_CORRECTED = Output("is_std_corrected", "none", "", "companion of is_corrected (no value: one split)")
_IS_AV_BENCH = Output("is_av_bench", "higher", "",
                      "IS as av-benchmark / torch-fidelity isc: 16 kHz Cnn14 logits, mean over 10 splits")
_IS_STD_AV_BENCH = Output("is_std_av_bench", "none", "", "std (N−1) of is_av_bench over the splits")


def mova_is(probs: np.ndarray, temperature: float = 1.0) -> float:
    """MOVA's IS from sigmoid clipwise outputs [N, 527] (float64 throughout)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-8, 1 - 1e-8)
    logits = (np.log(p) - np.log1p(-p)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    q = np.exp(logits)
    q /= q.sum(axis=1, keepdims=True)
    py = q.mean(axis=0, keepdims=True)
    kl = (q * (np.log(q + 1e-10) - np.log(py + 1e-10))).sum(axis=1)
    return float(np.exp(kl.mean()))


def split_is(logits: np.ndarray, splits: int = 10, seed: int = 2020, shuffle: bool = True) -> tuple[float, float]:
    """torch-fidelity / av-benchmark ``isc``: (mean, N−1 std) of per-split IS over softmax(logits), float64."""
    x = np.asarray(logits, dtype=np.float64)
    n = x.shape[0]
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    x = x - x.max(axis=1, keepdims=True)
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        pc, lpc = p[lo:hi], log_p[lo:hi]
        q = pc.mean(axis=0, keepdims=True)
        scores.append(math.exp(float((pc * (lpc - np.log(q))).sum(axis=1).mean())))
    s = np.asarray(scores)
    return float(s.mean()), float(s.std(ddof=1)) if splits > 1 else math.nan


@dataclass(frozen=True)
class ISOptions:
    """``metrics.options.is.*``."""

    mode: Literal["mova", "av_bench"] = option("mova", protocol=True, help="mova: 32 kHz sigmoid probabilities, "
        "one split; av_bench: 16 kHz logits, several splits (outputs named *_av_bench)")
    splits: int | None = option(None, role=SET, help="number of splits (null: 1 in mode mova, 10 in av_bench)")
    seed: int = option(2020, role=SET, help="seed of the split shuffle")
    duration: float | None = option(None, help="av_bench: cut to this many seconds (null: whole clip)")
    decode: Literal["mova", "corrected"] | None = option(
        None, protocol=True, help="mode mova only: mova (null, the default) = the toolkit's ffmpeg 32 kHz stereo s16 decode; "
                   "corrected = our soxr decode, outputs named is_corrected")


class InceptionScore(SetLevelMetric):
    Options = ISOptions
    info = MetricInfo(
        name="is",
        outputs=(_IS, _IS_STD),
        variant_outputs=(_IS_CORRECTED, _IS_STD_CORRECTED, _IS_AV_BENCH, _IS_STD_AV_BENCH),
        description="Audio Inception Score with PANNs Cnn14 (MOVA: 32 kHz, 10 s, one split per category)",
        needs=frozenset({"audio"}),
        extra="audio",
        packages=("torch",),
        weights=("panns_cnn14_32k",),
        aggregation=SET_LEVEL,
        version="3",  # 3: mode av_bench writes is_av_bench / is_std_av_bench
        reference="OpenMOSS/MOVA evaluation/metrics/audio_is_clap/IS.py + eval_audio_is_clap.py; av-benchmark av_bench/metrics/isc.py",
        card=Card(
            ranges=(
                ('is', '[1, 527] (the number of AudioSet classes)'),
                ('is_std', 'none (one split in mode mova)'),
                ('is_corrected', '[1, 527]'),
                ('is_std_corrected', 'none (one split)'),
                ('is_av_bench', '[1, 527]'),
                ('is_std_av_bench', '[0, ∞)'),
            ),
            scale='×1',
            tables=(
                "MOVA paper Table 4 (Verse-Bench objective comparison), column IS: mode=mova (32 kHz Cnn14, one "
                "split per category, mean of the set1/2/3 values)",
                'MMAudio paper tables (ISc-PANNs): mode=av_bench, VGGSound test set',
            ),
            reference_values=(
                'MOVA-360p: paper 4.269, MOVA toolkit 4.269 on set1+2+3 (evaluation README)',
                "Table 4: LTX-2 3.066, Ovi 3.680, WAN2.1+MMAudio 4.036, MOVA-720p 3.936, MOVA-360p dual CFG 4.169, "
                "MOVA-720p dual CFG 3.814",
            ),
            docs='docs/metrics/is_kl.md',
        ),
    )

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.mode = self.opts.mode
        self.splits = self.opts.splits if self.opts.splits is not None else (1 if self.mode == "mova" else 10)
        self.seed = self.opts.seed
        self.duration = self.opts.duration
        if self.mode == "av_bench" and self.opts.decode is not None:
            raise ConfigError("metrics.options.is.decode applies to mode mova only (av_bench mode decodes as "
                              "av-benchmark does: our 16 kHz track)")
        self.decode = (self.opts.decode or "mova") if self.mode == "mova" else None
        if self.decode == "corrected":  # its own output names: two decodes never share one
            self.info = dataclasses.replace(type(self).info, outputs=(_IS_CORRECTED, _IS_STD_CORRECTED))
        elif self.mode == "av_bench":  # another protocol: its own names
            self.info = dataclasses.replace(type(self).info, outputs=(_IS_AV_BENCH, _IS_STD_AV_BENCH))
        # MOVA: `all` = mean of category IS; av-benchmark: a statistic over every clip
        self.all_is_category_mean = self.mode == "mova"
        self._model = None

    @property
    def sample_rate(self) -> int:
        return 32000 if self.mode == "mova" else 16000

    def cache_token(self) -> str:
        import json

        from mova_eval import weights

        name = "panns_cnn14_32k" if self.mode == "mova" else "panns_cnn14_16k"
        opt = {**token_part(self.opts), "decode": self.decode}  # resolved: null and 'mova' are one decode
        return json.dumps({"v": self.info.version, "opt": opt, "w": weights.fingerprint(name, self.context)}, sort_keys=True)

    def load(self) -> None:
        require_package("is", "torch", "audio")
        self._model = panns.load_cnn14(self.sample_rate, self.device, self.context)

    def _audio(self, clip: Clip) -> np.ndarray:
        if self.mode == "mova":
            if self.decode == "mova":  # IS.py's _ten_seconds on the toolkit's decode: zero pad or cut to 10 s
                return fit_length(clip.audio_for(MOVA_PRESET), MOVA_SAMPLES, "pad")
            return clip.audio_for(CORRECTED_PRESET)
        x = clip.audio_for(AudioPreset(16000, mono=True, name="panns16k"))
        if self.duration is not None:
            x = x[: int(round(float(self.duration) * 16000))]
        hop = 160
        if x.shape[-1] < (MIN_FRAMES - 1) * hop:
            raise MediaError(clip.path, f"audio lasts {x.shape[-1] / 16000:.3f} s; Cnn14 needs at least "
                                        f"{(MIN_FRAMES - 1) * hop / 16000:.2f} s")
        return x - x.mean()

    def features(self, clip: Clip, item: SuiteItem) -> np.ndarray:
        """MOVA mode: the 527 sigmoid probabilities; av_bench mode: the 527 logits."""
        if self._model is None:
            self.load()
        out = panns.run_cnn14(self._model, self._audio(clip)[None])
        return out["clipwise_output" if self.mode == "mova" else "logits"][0].astype(np.float32)

    def compute(self, features: Sequence[np.ndarray], items: Sequence[SuiteItem]) -> SetResult:
        f = np.stack([np.asarray(x, dtype=np.float64) for x in features])
        is_name, std_name = (o.name for o in self.info.outputs)
        if self.mode == "mova":
            if self.splits != 1:
                raise ValueError("is: mode 'mova' uses one split; use mode 'av_bench' for several")
            return SetResult({is_name: mova_is(f), std_name: math.nan},
                             note=f"n={len(f)}; decode {self.decode}; {std_name}: none in mode 'mova' (one split)")
        if len(f) < self.splits:
            raise ValueError(f"is: {len(f)} clips cannot fill {self.splits} splits")
        mean, std = split_is(f, self.splits, self.seed)
        return SetResult({is_name: mean, std_name: std}, note=f"n={len(f)}, {self.splits} splits, seed {self.seed}")
