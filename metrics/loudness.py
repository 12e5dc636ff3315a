"""Loudness: integrated LUFS (ITU-R BS.1770-4, gated) and RMS level in dBFS.

Preprocessing as the MOVA toolkit's ``eval_audio_amplitude.py``: the whole track, resampled to 48 kHz and averaged
to mono, then ``pyloudnorm.Meter(48000).integrated_loudness`` (K-weighting, 400 ms blocks, −70 LUFS absolute and
−10 LU relative gates). Option ``mode: bs1770`` measures each channel as BS.1770 defines (channel energies summed)
instead of the mono mixdown; the two agree for mono audio. That mode writes ``lufs_bs1770`` and ``rms_dbfs_bs1770`` (RMS over
every channel's samples), so the two protocols never share an output name (before metric version 2 both wrote
``lufs``/``rms_dbfs``).

Differences from the toolkit, on purpose: digital silence or audio entirely below the −70 LUFS gate has no
integrated loudness — the toolkit lets −inf into its means, we record NaN with the reason; a track shorter than
one 400 ms block likewise. RMS is reported in dBFS (20·log10 of √mean(x²)); the toolkit reports the linear RMS,
which ``details`` keeps as ``rms_linear``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mova_eval.errors import MediaError
from mova_eval.media import AudioPreset
from mova_eval.metrics.base import CATEGORY_MEAN, Card, ItemScore, Metric, MetricInfo, Output, variant_of
from mova_eval.metrics.options import option
from mova_eval.spec import Clip, SuiteItem

SAMPLE_RATE = 48_000
BLOCK_S = 0.4


@dataclass(frozen=True)
class LoudnessOptions:
    """``metrics.options.loudness.*`` (a wrong key or type is a ConfigError listing these)."""

    mode: Literal["mova", "bs1770"] = option("mova", protocol=True, help="mova: mono mixdown as the toolkit; "
                                                          "bs1770: per channel (outputs named *_bs1770)")


_OUTPUTS = (Output("lufs", "none", "LUFS", "integrated loudness (BS.1770, gated)"),
            Output("rms_dbfs", "none", "dBFS", "RMS level of the mono mixdown"))
_BS1770 = variant_of(_OUTPUTS, "_bs1770", "mode bs1770: each channel measured, not the toolkit's mono mixdown")


class LoudnessMetric(Metric):
    Options = LoudnessOptions
    info = MetricInfo(
        name="loudness",
        outputs=_OUTPUTS,
        variant_outputs=_BS1770,
        description="Integrated loudness and RMS level of the soundtrack",
        needs=frozenset({"audio"}),
        packages=("pyloudnorm",),
        aggregation=CATEGORY_MEAN,
        version="2",  # 2: mode bs1770 writes lufs_bs1770 / rms_dbfs_bs1770
        reference="OpenMOSS/MOVA evaluation/metrics/audio_amplitude (pyloudnorm path)",
        card=Card(
            ranges=(
                ('lufs', '[−70, ~0] LUFS (−70 is the absolute gate; digital silence has no value)'),
                ('rms_dbfs', '(−∞, ~0] dBFS'),
                ('lufs_bs1770', '[−70, ~0] LUFS'),
                ('rms_dbfs_bs1770', '(−∞, ~0] dBFS'),
            ),
            scale='×1',
            tables=(
                'none: the MOVA toolkit computes it but its README calls it context-dependent',
            ),
            docs='docs/metrics/loudness.md',
        ),
    )

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        if self.opts.mode == "bs1770":  # its own output names: two protocols never share one
            self.info = dataclasses.replace(type(self).info, outputs=_BS1770)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        import pyloudnorm

        lufs_name, rms_name = (o.name for o in self.info.outputs)
        mono = self.opts.mode == "mova"
        x = clip.audio_for(AudioPreset(SAMPLE_RATE, mono=mono, name="loudness48k"))
        n = x.shape[-1]
        if n < BLOCK_S * SAMPLE_RATE:
            raise MediaError(clip.path, f"audio lasts {n / SAMPLE_RATE:.3f} s, shorter than one 400 ms loudness block")
        meter = pyloudnorm.Meter(SAMPLE_RATE)
        data = np.asarray(x, dtype=np.float64)
        lufs = meter.integrated_loudness(data if mono else data.T)
        ms = float(np.mean(np.square(data)))
        values, errors = {}, {}
        if math.isfinite(lufs):
            values[lufs_name] = float(lufs)
        else:
            values[lufs_name] = math.nan
            errors[lufs_name] = "audio is silent or entirely below the −70 LUFS absolute gate"
        if ms > 0:
            values[rms_name] = 10.0 * math.log10(ms)
        else:
            values[rms_name] = math.nan
            errors[rms_name] = "audio is digital silence (RMS 0)"
        return ItemScore(values, details={"rms_linear": math.sqrt(ms), "mode": self.opts.mode}, errors=errors)
