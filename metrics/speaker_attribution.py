"""Speaker attribution: cpWER (English) and cpCER (Chinese) of multi-speaker speech, plus the speaker-count error.

Applies to items whose speech text carries ``[S01] … [S02] …`` tags with at least two speakers (MOVA's MyBench
multi-speaker set, our smoke dialogue). MOVA gets a diarized transcript from a remote ASR service; here it is built
locally, from models that ship in PyPI packages:

1. silero-vad (ONNX) segments the 16 kHz track (``min_silence_ms`` 250, threshold 0.5);
2. resemblyzer embeds every segment (256-d, L2-normalised);
3. average-linkage agglomerative clustering on cosine distance cuts the tree at the reference speaker count
   (option ``num_speakers: estimate`` cuts at ``distance_threshold`` instead); the count the threshold cut finds is
   always reported (details ``speakers_estimated``) and scored as ``*_speaker_count_error`` = |estimated − reference|;
4. each segment is transcribed with the shared Whisper (:mod:`mova_eval.metrics.features.asr`), language forced;
   each cluster's segments are joined in time order into one hypothesis speaker.

Scoring (MOVA ``speaker_metrics.cp_cer`` ≡ meeteval ``cp_word_error_rate``): per speaker the reference turns are
concatenated; a cost matrix of edit distances between every reference and hypothesis speaker (the shorter side
padded with empty speakers) is solved with ``scipy.optimize.linear_sum_assignment``; errors are the summed costs of
the assignment (edits never cross speakers; an unmatched hypothesis speaker's words are insertions, an unmatched
reference speaker's are deletions), the denominator is the reference length. English is scored in words after the
Whisper English normaliser, Chinese in characters without punctuation or spaces (MOVA's normalisation). Corpus
level as MOVA: Σ errors / Σ reference length (``cpwer_num``/``cpwer_den``). MOVA prints cpCER in percent; we
report the fraction (MOVA's README also quotes 0.156 as a fraction).
"""
from __future__ import annotations

import math
import threading
from typing import Sequence

import numpy as np

from mova_eval.errors import ConfigError, MissingDependencyError
from mova_eval.metrics.base import CORPUS, ItemScore, Metric, MetricInfo, Output
from mova_eval.spec import Clip, SuiteItem

SR = 16_000
_LOCK = threading.Lock()
_MODELS: dict[str, object] = {}


# ----------------------------------------------------------------------------------------------- scoring


def cp_error(refs: Sequence[str], hyps: Sequence[str], unit: str = "word") -> dict:
    """Concatenated minimum-permutation errors of per-speaker normalised texts.

    Returns errors, length (reference words/chars) and ``assignment``: for each reference index, the hypothesis
    index it was matched to (None when matched to a padding speaker)."""
    from scipy.optimize import linear_sum_assignment

    from mova_eval.metrics.wer import error_counts

    n = max(len(refs), len(hyps), 1)
    r = list(refs) + [""] * (n - len(refs))
    h = list(hyps) + [""] * (n - len(hyps))
    cost = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(n):
            c = error_counts(r[i], h[j], unit)
            cost[i, j] = c["substitutions"] + c["deletions"] + c["insertions"]
    rows, cols = linear_sum_assignment(cost)
    length = sum(len(x) if unit == "char" else len(x.split()) for x in refs)
    assignment = [None] * len(refs)
    for i, j in zip(rows, cols):
        if i < len(refs):
            assignment[i] = int(j) if j < len(hyps) else None
    return {"errors": int(cost[rows, cols].sum()), "length": int(length), "assignment": assignment}


# ----------------------------------------------------------------------------------------------- diarization


def _vad():
    with _LOCK:
        if "vad" not in _MODELS:
            try:
                from silero_vad import load_silero_vad
            except ImportError as e:
                raise MissingDependencyError("silero-vad segmentation", "silero_vad", "speech") from e
            _MODELS["vad"] = load_silero_vad(onnx=True)
        return _MODELS["vad"]


def _encoder():
    with _LOCK:
        if "enc" not in _MODELS:
            try:
                from resemblyzer import VoiceEncoder
            except ImportError as e:
                raise MissingDependencyError(
                    "resemblyzer speaker embeddings", "resemblyzer",
                    "speech (then: pip install --no-deps resemblyzer==0.1.4 webrtcvad-wheels)") from e
            _MODELS["enc"] = VoiceEncoder("cpu", verbose=False)
        return _MODELS["enc"]


def speech_segments(audio16k: np.ndarray, threshold: float = 0.5, min_silence_ms: int = 250) -> list[tuple[int, int]]:
    """(start, end) sample indices of speech found by silero-vad."""
    import torch
    from silero_vad import get_speech_timestamps

    model = _vad()
    with _LOCK:  # the ONNX wrapper keeps recurrent state between chunks
        ts = get_speech_timestamps(torch.from_numpy(np.array(audio16k, dtype=np.float32)), model,
                                   threshold=threshold, sampling_rate=SR, min_silence_duration_ms=min_silence_ms)
    return [(int(t["start"]), int(t["end"])) for t in ts]


def embed_segments(audio16k: np.ndarray, segs: Sequence[tuple[int, int]]) -> np.ndarray:
    enc = _encoder()
    with _LOCK:
        embs = [enc.embed_utterance(np.asarray(audio16k[s:e], dtype=np.float32)) for s, e in segs]
    return np.stack(embs) if embs else np.zeros((0, 256), np.float32)


def cluster(embs: np.ndarray, n_speakers: int | None, distance_threshold: float) -> tuple[np.ndarray, int]:
    """Labels 0..k-1 for each embedding (cut at ``n_speakers`` or, when None, at the threshold) and the number
    of speakers the threshold cut finds."""
    from scipy.cluster.hierarchy import fcluster, linkage

    m = len(embs)
    if m == 0:
        return np.zeros(0, int), 0
    if m == 1:
        return np.zeros(1, int), 1
    z = linkage(embs, method="average", metric="cosine")
    est = fcluster(z, t=distance_threshold, criterion="distance")
    n_est = len(set(est.tolist()))
    lab = est if n_speakers is None else fcluster(z, t=min(n_speakers, m), criterion="maxclust")
    # relabel by first appearance so speaker 0 is whoever speaks first
    order = {c: i for i, c in enumerate(dict.fromkeys(lab.tolist()))}
    return np.array([order[c] for c in lab.tolist()]), n_est


# ----------------------------------------------------------------------------------------------- metric


class _CpErrorRate(Metric):
    __abstract__ = True
    language: str = "en"
    unit: str = "word"

    def __init__(self, options=None, device="cpu"):
        super().__init__(options, device)
        from mova_eval.metrics.features.asr import AsrConfig, check_options

        check_options(self.info.name, self.options,
                      ("num_speakers", "distance_threshold", "min_silence_ms", "vad_threshold", "t2s"))
        self.asr = AsrConfig.from_options(self.options, device)
        self.mode = self.options.get("num_speakers", "reference")
        if self.mode not in ("reference", "estimate"):
            raise ConfigError(f"{self.info.name}: num_speakers must be 'reference' or 'estimate', got {self.mode!r}")
        self.threshold = float(self.options.get("distance_threshold", 0.25))
        self.min_silence_ms = int(self.options.get("min_silence_ms", 250))
        self.vad_threshold = float(self.options.get("vad_threshold", 0.5))
        self.t2s = bool(self.options.get("t2s", False))

    def applies(self, item: SuiteItem) -> bool:
        return item.has_speech and item.language == self.language and (item.num_speakers or 0) >= 2

    def load(self) -> None:
        from mova_eval.metrics.features import asr

        _vad()
        _encoder()
        if self.language == "en" or not asr.is_english_only(self.asr.model):
            asr.get_model(self.asr)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        from mova_eval.metrics.features import asr
        from mova_eval.metrics.features.text_norm import normalize, split_speakers
        from mova_eval.metrics.wer import ASR_PRESET, silence_reason

        out, cnt = (o.name for o in self.info.outputs)
        names = (out, cnt)
        ref_spk = split_speakers(item.speech_text)
        n_ref = len(ref_spk)
        details: dict = {"reference_speakers": ref_spk, "speakers_reference": n_ref, "asr_model": self.asr.model,
                         "clustering": self.mode, "distance_threshold": self.threshold}
        audio = clip.audio_for(ASR_PRESET)
        quiet = silence_reason(audio)
        segs = [] if quiet else speech_segments(audio, self.vad_threshold, self.min_silence_ms)
        if not segs:
            reason = quiet or "no speech: silero-vad found no speech segment"
            return ItemScore({n: math.nan for n in names}, details, {n: reason for n in names})
        labels, n_est = cluster(embed_segments(audio, segs), None if self.mode == "estimate" else n_ref,
                                self.threshold)
        details.update(speakers_estimated=n_est, segments=[
            {"start": round(s / SR, 3), "end": round(e / SR, 3), "speaker": int(k)} for (s, e), k in zip(segs, labels)])
        values = {cnt: float(abs(n_est - n_ref))}
        details.update({f"{cnt}_num": abs(n_est - n_ref), f"{cnt}_den": 1})
        errors: dict = {}
        try:
            asr.check_language(self.asr, self.language, self.info.name)
            texts = []
            for s, e in segs:
                texts.append(asr.transcribe(audio[s:e], self.language, self.asr)["text"])
        except asr.EnglishOnlyModel as e:
            msg = str(e) if str(e).startswith("unavailable") else f"unavailable: {e}"
            return ItemScore({out: math.nan, **values}, details, {out: msg})
        for seg, t in zip(details["segments"], texts):
            seg["text"] = t
        hyp_spk: dict[int, list[str]] = {}
        for k, t in zip(labels.tolist(), texts):
            hyp_spk.setdefault(int(k), []).append(t)
        hyp_list = [" ".join(hyp_spk[k]) for k in sorted(hyp_spk)]
        ref_keys = list(ref_spk)
        ref_n = [normalize(ref_spk[k], self.language, self.t2s) for k in ref_keys]
        hyp_n = [normalize(h, self.language, self.t2s) for h in hyp_list]
        r = cp_error(ref_n, hyp_n, self.unit)
        details.update(hypothesis_speakers={f"H{i}": h for i, h in enumerate(hyp_list)},
                       assignment={ref_keys[i]: (None if j is None else f"H{j}") for i, j in enumerate(r["assignment"])},
                       **{f"{out}_num": r["errors"], f"{out}_den": r["length"]})
        if r["length"] == 0:
            values[out] = math.nan
            errors[out] = "reference is empty after normalisation"
        else:
            values[out] = r["errors"] / r["length"]
        return ItemScore(values, details, errors)


_COMMON = dict(needs=frozenset({"audio", "speech"}), extra="speech",
               packages=("faster_whisper", "jiwer", "silero_vad", "resemblyzer", "scipy"), aggregation=CORPUS,
               version="1")


class CpWerMetric(_CpErrorRate):
    language, unit = "en", "word"
    info = MetricInfo(
        name="cpwer",
        outputs=(Output("cpwer", "lower", "fraction", "concatenated minimum-permutation WER (English, multi-speaker)"),
                 Output("cpwer_speaker_count_error", "lower", "speakers",
                        "|speakers found by clustering − speakers in the reference| (English multi-speaker items)")),
        description="Speaker-attributed WER: silero-vad + resemblyzer clustering + Whisper, Hungarian-matched cpWER",
        reference="fgnt/meeteval cp_word_error_rate; OpenMOSS/MOVA evaluation/metrics/cpcer (cp_cer)",
        **_COMMON,
    )


class CpCerMetric(_CpErrorRate):
    language, unit = "zh", "char"
    info = MetricInfo(
        name="cpcer",
        outputs=(Output("cpcer", "lower", "fraction", "concatenated minimum-permutation CER (Chinese, multi-speaker)"),
                 Output("cpcer_speaker_count_error", "lower", "speakers",
                        "|speakers found by clustering − speakers in the reference| (Chinese multi-speaker items)")),
        description="Speaker-attributed CER as MOVA's cpCER, with a local diarizing pipeline",
        reference="OpenMOSS/MOVA evaluation/metrics/cpcer/speaker_metrics.py cp_cer",
        **_COMMON,
    )
