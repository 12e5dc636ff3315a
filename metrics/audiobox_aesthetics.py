"""Audiobox-Aesthetics: Meta's four per-file audio aesthetics scores (CE, CU, PC, PQ) on a 1–10 scale.

Reference: ``facebookresearch/audiobox-aesthetics`` (PyPI ``audiobox_aesthetics`` 0.0.4) ``infer.py``
``AesPredictor.forward`` with ``model/aes.py`` ``AesMultiOutput`` (network: :mod:`mova_eval.metrics.features.audiobox`):

1. the clip's audio track at its own rate (asked from the shared Clip with a native-rate mono preset; the channel
   mean commutes with the linear resampler, so mean-then-resample equals upstream's resample-then-mean up to float
   rounding), resampled to 16 kHz as ``torchaudio.functional.resample`` does with its defaults (windowed sinc, Hann,
   width 6, rolloff 0.99; reimplemented, torchaudio does not load here);
2. no gain or loudness normalisation; 10 s windows with a 10 s hop, the last zero-padded with a mask; chunk weight =
   valid length / 160000; per axis the weighted mean of the chunks' predictions after ``z·σ + μ``;
3. float32 throughout (the published config's ``precision`` "32": upstream never autocasts).

Outputs (all "1–10", regression, not clamped):

- ``aes_ce`` Content Enjoyment (higher is better), ``aes_cu`` Content Usefulness (higher is better),
  ``aes_pq`` Production Quality (higher is better);
- ``aes_pc`` Production **Complexity**: how many sound sources / how busy the mix is. It is a description, **not a
  quality**: direction "none" here. (Verse-Bench's normalisation treats lower PC as better; say so when you rank.)

Set values are pooled means over clips (AVGen-Bench averages PQ over all files). Clips with no audio are NaN with
the reason (AVGen skips failures).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from mova_eval import weights
from mova_eval.context import RunContext
from mova_eval.errors import ConfigError
from mova_eval.media import AudioPreset
from mova_eval.metrics.base import POOLED_MEAN, Card, ItemScore, Metric, MetricInfo, Output, require_package
from mova_eval.metrics.options import RUNTIME, option
from mova_eval.spec import Clip, SuiteItem

weights.register(weights.WeightSpec(
    name="audiobox_aesthetics",
    filename="audiobox_aesthetics_checkpoint.pt",
    urls=("https://dl.fbaipublicfiles.com/audiobox-aesthetics/checkpoint.pt",),
    license="CC-BY 4.0 (checkpoint; the WavLM code is MIT)",
    used_by=("audiobox_aesthetics",),
    description="Audiobox-Aesthetics checkpoint.pt: dict with state_dict (324 tensors, 'model.' prefix, ≈104 M "
                "parameters), model_cfg and target_transform; saved under this name (upstream calls it "
                "checkpoint.pt). No checksum is published: trust on first use. The HF repo "
                "facebook/audiobox-aesthetics holds the same weights as model.safetensors (also loadable)",
))

OUTPUTS = (
    Output("aes_ce", "higher", "score 1–10", "Audiobox-Aesthetics Content Enjoyment"),
    Output("aes_cu", "higher", "score 1–10", "Audiobox-Aesthetics Content Usefulness"),
    Output("aes_pc", "none", "score 1–10", "Audiobox-Aesthetics Production Complexity (a description of how busy "
                                            "the audio is, not a quality; Verse-Bench ranks lower as better)"),
    Output("aes_pq", "higher", "score 1–10", "Audiobox-Aesthetics Production Quality"),
)
_AXIS = {"aes_ce": "CE", "aes_cu": "CU", "aes_pc": "PC", "aes_pq": "PQ"}

_NETS: dict = {}
_LOCK = threading.Lock()


def shared_network(device: str, context: RunContext | None = None):
    """One network per (checkpoint, device) in the process; the checkpoint is looked up in ``context``'s folders."""
    path = weights.resolve("audiobox_aesthetics", context)
    key = (str(path), weights.fingerprint("audiobox_aesthetics", context), str(device))
    with _LOCK:
        if key not in _NETS:
            from mova_eval.metrics.features import audiobox

            _NETS[key] = audiobox.load(path, device=device)
        return _NETS[key]


def prepare(clip: Clip):
    """Mono 16 kHz float32 signal as upstream feeds its model, and details."""
    from mova_eval.metrics.features import audiobox

    native = clip.audio_for(AudioPreset(sample_rate=clip.sample_rate, mono=True, name="native_mono"))
    wav = audiobox.resample_like_torchaudio(native, clip.sample_rate, audiobox.SAMPLE_RATE)
    return wav, {"source_sample_rate": int(clip.sample_rate), "seconds": round(wav.shape[-1] / 16000, 4),
                 "chunks": int(math.ceil(wav.shape[-1] / audiobox.WINDOW))}


@dataclass(frozen=True)
class AudioboxOptions:
    """``metrics.options.audiobox_aesthetics.*``."""

    chunk_batch: int = option(4, role=RUNTIME, help="10 s chunks per WavLM forward pass (speed/memory only)")


class AudioboxAestheticsMetric(Metric):
    """Meta Audiobox-Aesthetics CE/CU/PC/PQ (WavLM Base+ with four heads), upstream's chunking and resampling."""

    info = MetricInfo(
        name="audiobox_aesthetics",
        outputs=OUTPUTS,
        description="Audiobox-Aesthetics: content enjoyment, content usefulness, production complexity, production "
                    "quality (Meta, WavLM-based, 1–10)",
        needs=frozenset({"audio"}),
        extra="audio",
        packages=("torch",),
        weights=("audiobox_aesthetics",),
        aggregation=POOLED_MEAN,
        version="1",
        reference="facebookresearch/audiobox-aesthetics infer.py AesPredictor (PyPI audiobox_aesthetics 0.0.4); "
                  "parity on seeded random weights in the checkpoint.pt layout",
        card=Card(
            ranges=tuple((o.name, "≈ 1–10 (regression output, not clamped)") for o in OUTPUTS),
            scale="×1 (the model's 1–10 scale; AVGen-Bench's Aud_n is 10·PQ clamped to 0–100)",
            tables=("AVGen-Bench: PQ only (aes_pq), mean over all files",
                    "T2AV-Compass: Audiobox-Aesthetics axes (per metrics-2.md; variant as upstream's predictor)",
                    "VABench: Audiobox-Aesthetics axes (per metrics-2.md; variant as upstream's predictor)",
                    "JavisBench: Audiobox-Aesthetics axes (per metrics-2.md; variant as upstream's predictor)",
                    "Verse-Bench's own tool: all four axes, normalised with PC best = 1 (lower is better)",
                    "MOVA's Table 4: not used"),
            reference_values=("upstream README sample output CE 5.146, CU 5.779, PC 2.148, PQ 7.220 (input file not "
                              "named)", "AVGen-Bench README PQ: Seedance-1.5 Pro 7.48, Ovi 6.31 (videos not "
                              "released)"),
            notes="aes_pc is production complexity, a description and not a quality: its direction is 'none'.",
            docs="docs/metrics/audiobox_aesthetics.md",
        ),
    )
    Options = AudioboxOptions

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.batch = self.opts.chunk_batch
        if self.batch < 1:
            raise ConfigError(f"metrics.options.audiobox_aesthetics.chunk_batch must be an integer ≥ 1, got "
                              f"{self.batch!r}")
        self._net = None

    def load(self) -> None:
        require_package("audiobox_aesthetics", "torch", self.info.extra)
        self._net = shared_network(self.device, self.context)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        names = [o.name for o in self.info.outputs]
        if not clip.has_audio:
            return ItemScore({n: math.nan for n in names}, {}, {n: "the clip has no audio track" for n in names})
        if self._net is None:
            self.load()
        from mova_eval.metrics.features import audiobox

        wav, details = prepare(clip)
        if wav.shape[-1] == 0:
            return ItemScore({n: math.nan for n in names}, details, {n: "the audio track is empty" for n in names})
        model, transform = self._net
        pred = audiobox.predict(model, transform, wav, self.device, self.batch)
        values = {n: pred[_AXIS[n]] for n in names}
        errors = {n: "the network gave a non-finite value" for n, v in values.items() if not math.isfinite(v)}
        return ItemScore({n: (v if n not in errors else math.nan) for n, v in values.items()}, details, errors)
