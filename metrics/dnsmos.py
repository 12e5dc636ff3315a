"""DNSMOS: Microsoft's non-intrusive speech-quality predictors, P.808 MOS and P.835 SIG/BAK/OVRL.

Models: the ONNX files shipped inside the ``speechmos`` package (``dnsmos_models/model_v8.onnx`` for P.808,
``dnsmos_models/sig_bak_ovr.onnx`` for P.835; ``pdnsmos_models/sig_bak_ovr.onnx`` with option
``personalized: true``), run here with our own onnxruntime code. They are byte-identical to the ones the MOVA
toolkit commits (``evaluation/metrics/dnsmos/DNSMOS/``).

Windowing as the MOVA toolkit's ``eval_dnsmos.py`` and ``speechmos.dnsmos`` (identical): 16 kHz mono; the track is
doubled (``append(x, x)``) until it holds at least 9.01 s (an 8 s clip becomes 16 s, so windows straddle the loop
seam); ``floor(len/16000 − 9.01) + 1`` windows of 9.01 s at a 1 s hop; P.808 sees the log-mel
(n_fft 321, hop 160, 120 mels, ``(power_to_db(ref=max)+40)/40``) of each window minus its last 160 samples;
P.835 sees raw samples and its raw outputs go through the DNS-Challenge polynomial calibration. Each score is the
mean over windows. MOVA reports ``dnsmos_p808`` only (its "DNSMOS", set3).

Options: ``outputs`` (default ``[dnsmos_p808]``, MOVA's number): the P.835 model runs only when one of
``dnsmos_sig``/``dnsmos_bak``/``dnsmos_ovrl`` is asked for, as MOVA's ``only_p808=True`` skips it.
``decode`` (default ``mova``): the track MOVA scores — ``ffmpeg -i CLIP -f wav -acodec pcm_s16le -ar 16000 -ac 1``
reproduced by :func:`mova_eval.media.ffmpeg_audio` (FFmpeg's resampler and stereo downmix, s16 samples, AAC end
padding kept: no cut at the declared duration), in float64 as ``soundfile.read`` hands it on. ``corrected``: our
Clip's track (aligned, padding cut) through soxr, float32. The two are not interchangeable: on sub-9 s clips the
padding samples move the tiling seam of every window, and the resamplers differ — measured up to 0.15 P.808 per
clip (set means 3.722 vs 3.774 on 36 clips), far above int16 quantisation. The MOVA decode reproduces
``eval_dnsmos.py`` run on the same clips (measured within 3.1e-6, asserted ≤ 1e-3 in
tests/metrics/test_mova_decode_parity.py).

Output names carry the variant: ``decode: corrected`` writes ``dnsmos_p808_corrected`` (and ``dnsmos_sig_corrected``…),
``personalized: true`` writes ``dnsmos_sig_personalized``/``dnsmos_bak_personalized``/``dnsmos_ovrl_personalized``
(P.808 has no personalized model), both together ``dnsmos_sig_personalized_corrected``…; so two variants never share
an output name (before metric version 3 every variant wrote ``dnsmos_p808``…). ``outputs:`` takes the plain names
(``[dnsmos_p808, dnsmos_sig]``) or this variant's.

Difference from MOVA, on purpose, in both decodes: digital silence is recorded as NaN with the reason (MOVA
scores it, e.g. 2.147, and keeps it in the mean).
"""
from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mova_eval.errors import ConfigError, MissingDependencyError
from mova_eval.media import AudioPreset
from mova_eval.metrics.base import CATEGORY_MEAN, Card, ItemScore, Metric, MetricInfo, Output, variant_of
from mova_eval.metrics.options import option
from mova_eval.spec import Clip, SuiteItem

SR = 16_000
INPUT_LENGTH = 9.01
PRESET = AudioPreset(SR, mono=True, name="dnsmos16k")
#: The MOVA toolkit's decode: ffmpeg to 16 kHz mono s16 (see the module docstring).
MOVA_PRESET = AudioPreset(SR, mono=True, name="dnsmos16k_ffmpeg_s16", decoder="ffmpeg", ffmpeg_channels=1,
                          sample_format="s16")
DECODES = {"mova": MOVA_PRESET, "corrected": PRESET}
P835 = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
_BASE = (
    Output("dnsmos_p808", "higher", "MOS", "DNSMOS P.808 MOS (MOVA's 'DNSMOS')"),
    Output("dnsmos_sig", "higher", "MOS", "DNSMOS P.835 speech signal quality"),
    Output("dnsmos_bak", "higher", "MOS", "DNSMOS P.835 background noise quality"),
    Output("dnsmos_ovrl", "higher", "MOS", "DNSMOS P.835 overall quality"),
)
_PERSONALIZED_NOTE = "personalized: the pDNSMOS P.835 model"
_CORRECTED_NOTE = "decode: corrected, our soxr track, not the toolkit's ffmpeg s16 decode"


def variant_outputs(personalized: bool, decode: str) -> tuple[Output, ...]:
    """The four outputs of one variant, in the order of the plain ones (P.808 has no personalized model)."""
    outs = list(_BASE)
    if personalized:
        outs = [o if o.name not in P835 else variant_of((o,), "_personalized", _PERSONALIZED_NOTE)[0] for o in outs]
    if decode == "corrected":
        outs = list(variant_of(outs, "_corrected", _CORRECTED_NOTE))
    return tuple(outs)


#: the outputs of every other variant (a plain name, such as P.808 under personalized, only once: in outputs)
_VARIANTS = tuple({o.name: o for p in (False, True) for d in DECODES for o in variant_outputs(p, d)
                   if o not in _BASE}.values())
_RANGE = "[1, 5]"
# DNS-Challenge dnsmos_local.py calibration polynomials (highest power first)
POLY = {
    False: {"sig": (-0.08397278, 1.22083953, 0.0052439), "bak": (-0.13166888, 1.60915514, -0.39604546),
            "ovr": (-0.06766283, 1.11546468, 0.04602535)},
    True: {"sig": (-0.01019296, 0.02751166, 1.19576786, -0.24348726),
           "bak": (-0.04976499, 0.44276479, -0.1644611, 0.96883132),
           "ovr": (-0.00533021, 0.005101, 1.18058466, -0.11236046)},
}


def model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("DNSMOS ONNX models", "speechmos", "speech")
    return Path(list(spec.submodule_search_locations)[0])


def windows(audio: np.ndarray, fs: int = SR) -> list[np.ndarray]:
    """The 9.01 s windows DNSMOS scores (tiling short audio by doubling, 1 s hop); float64 input stays float64."""
    need = int(INPUT_LENGTH * fs)
    x = np.asarray(audio)
    if x.dtype != np.float64:
        x = x.astype(np.float32)
    if x.size == 0:
        raise ValueError("empty audio")
    while x.size < need:
        x = np.append(x, x)
    n = int(np.floor(x.size / fs) - INPUT_LENGTH) + 1
    out = []
    for i in range(n):
        seg = x[int(i * fs): int((i + INPUT_LENGTH) * fs)]
        if seg.size >= need:
            out.append(seg)
    return out


def p808_features(seg: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=seg[:-160], sr=SR, n_fft=321, hop_length=160, n_mels=120)
    return np.asarray((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T.astype(np.float32)[None]


class DnsmosModels:
    """The two onnxruntime sessions, created once per process (thread-safe: ORT sessions allow concurrent run)."""

    _cache: dict = {}
    _lock = threading.Lock()

    def __init__(self, personalized: bool = False, providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MissingDependencyError("DNSMOS", "onnxruntime", "speech") from e
        d = model_dir()
        primary = d / ("pdnsmos_models" if personalized else "dnsmos_models") / "sig_bak_ovr.onnx"
        p808 = d / "dnsmos_models" / "model_v8.onnx"
        for f in (primary, p808):
            if not f.is_file():
                raise MissingDependencyError(f"DNSMOS model file {f}", "speechmos", "speech")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        provs = providers or ["CPUExecutionProvider"]
        self.primary = ort.InferenceSession(str(primary), so, providers=provs)
        self.p808 = ort.InferenceSession(str(p808), so, providers=provs)
        self.personalized = personalized

    @classmethod
    def get(cls, personalized: bool = False, device: str = "cpu") -> "DnsmosModels":
        provs = ["CUDAExecutionProvider", "CPUExecutionProvider"] if str(device).startswith("cuda") else None
        key = (personalized, tuple(provs or ()))
        with cls._lock:
            if key not in cls._cache:
                cls._cache[key] = cls(personalized, provs)
            return cls._cache[key]

    def score(self, audio16k: np.ndarray, p835: bool = True) -> dict:
        """Mean P.808 (and, with ``p835``, calibrated SIG/BAK/OVRL) over the windows of one track in [-1, 1].

        The track's dtype is kept for the mel features (MOVA's reads float64 from its wav); the networks get float32.
        """
        p808, sig, bak, ovr = [], [], [], []
        poly = POLY[self.personalized]
        for seg in windows(audio16k):
            p808.append(float(self.p808.run(None, {"input_1": p808_features(seg)})[0][0][0]))
            if p835:
                raw = self.primary.run(None, {"input_1": seg.astype(np.float32)[None]})[0][0]
                sig.append(float(np.polyval(poly["sig"], raw[0])))
                bak.append(float(np.polyval(poly["bak"], raw[1])))
                ovr.append(float(np.polyval(poly["ovr"], raw[2])))
        out = {"dnsmos_p808": float(np.mean(p808)), "windows": len(p808)}
        if p835:
            out.update(dnsmos_sig=float(np.mean(sig)), dnsmos_bak=float(np.mean(bak)), dnsmos_ovrl=float(np.mean(ovr)))
        return out


@dataclass(frozen=True)
class DnsmosOptions:
    """``metrics.options.dnsmos.*``."""

    personalized: bool = option(False, protocol=P835, help="the personalized (pDNSMOS) SIG/BAK/OVRL model "
                                                                 "(outputs named *_personalized)")
    decode: Literal["mova", "corrected"] = option("mova", protocol=True, help="mova: MOVA's s16 decode; "
                                                   "corrected: float (outputs named *_corrected)")
    outputs: str | tuple[str, ...] = option(("dnsmos_p808",), help="which outputs to report (P.808 and/or P.835)")
    all_items: bool = option(False, protocol=False, help="score every item with audio, not only items with "
                                                           "speech (which items, not how: each value is the same)")


class DnsmosMetric(Metric):
    Options = DnsmosOptions
    info = MetricInfo(
        name="dnsmos",
        outputs=_BASE,
        variant_outputs=_VARIANTS,  # decode corrected, personalized P.835, both
        description="Non-intrusive speech quality (Microsoft DNSMOS, ONNX models from the speechmos package)",
        needs=frozenset({"audio", "speech"}),
        extra="speech",
        packages=("onnxruntime", "librosa", "speechmos"),
        aggregation=CATEGORY_MEAN,
        version="3",  # 3: each variant writes its own output names
        reference="OpenMOSS/MOVA evaluation/metrics/dnsmos/eval_dnsmos.py; speechmos.dnsmos (microsoft/DNS-Challenge)",
        card=Card(
            ranges=(
                ('dnsmos_p808', '[1, 5]'),
                ('dnsmos_sig', '[1, 5]'),
                ('dnsmos_bak', '[1, 5]'),
                ('dnsmos_ovrl', '[1, 5]'),
                *((o.name, _RANGE) for o in _VARIANTS),
            ),
            scale='×1 (MOS)',
            tables=(
                "MOVA paper Table 4 (Verse-Bench objective comparison), column DNSMOS = dnsmos_p808, MOVA toolkit "
                "variant, the set3 row (speech prompts)",
            ),
            reference_values=(
                'MOVA-360p: paper 3.797, MOVA toolkit 3.798 on set3 (evaluation README)',
                "Table 4: LTX-2 3.635, Ovi 3.516, MOVA-720p 3.671, MOVA-360p dual CFG 3.674, MOVA-720p dual CFG "
                "3.751",
            ),
            docs='docs/metrics/dnsmos.md',
        ),
    )

    def __init__(self, options=None, device="cpu", context=None):
        if "mova_s16" in (options or {}):
            raise ConfigError("metrics.options.dnsmos.mova_s16: unknown option ('mova_s16' is gone: decode: mova is "
                              "MOVA's s16 decode); known: personalized, decode, outputs, all_items")
        super().__init__(options, device, context)
        self.personalized = self.opts.personalized
        self.all_items = self.opts.all_items
        self.decode = self.opts.decode
        mine = variant_outputs(self.personalized, self.decode)
        if mine != _BASE:  # this variant's own names: two variants never share one
            self.info = dataclasses.replace(type(self).info, outputs=mine)
        plain = {b.name: o for b, o in zip(_BASE, mine)}  # the plain name → this variant's output
        own = {o.name: o for o in mine}
        wanted = [self.opts.outputs] if isinstance(self.opts.outputs, str) else list(self.opts.outputs)
        bad = [w for w in wanted if w not in plain and w not in own]
        if bad or not wanted:
            raise ConfigError(f"metrics.options.dnsmos.outputs: {bad or 'empty'} not among {list(plain)}"
                              + (f" or {list(own)}" if mine != _BASE else ""))
        chosen = {(plain.get(w) or own[w]).name for w in wanted}
        self.outputs = tuple(o for o in mine if o.name in chosen)
        #: this variant's name → the plain name the models' scores are keyed by
        self._plain = {o.name: b.name for b, o in zip(_BASE, mine)}
        self.p835 = any(self._plain[o.name] in P835 for o in self.outputs)

    def requested_outputs(self):
        return self.outputs

    def applies(self, item: SuiteItem) -> bool:
        """Speech items by default (MOVA reports set3, all speech); ``all_items: true`` scores every clip."""
        return self.all_items or item.has_speech

    def load(self) -> None:
        DnsmosModels.get(self.personalized, self.device)

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        x = clip.audio_for(DECODES[self.decode])
        # MOVA's soundfile.read gives float64 (int16 / 32768, exact); ours stays float32.
        x = np.asarray(x, dtype=np.float64 if self.decode == "mova" else np.float32)
        names = [o.name for o in self.outputs]
        if x.size == 0 or not np.any(x):
            reason = "no speech: the audio track is digital silence (DNSMOS would rate the tiling of nothing)"
            return ItemScore({n: math.nan for n in names}, {}, {n: reason for n in names})
        x = np.clip(x, -1.0, 1.0)
        r = DnsmosModels.get(self.personalized, self.device).score(x, p835=self.p835)
        return ItemScore({n: r[self._plain[n]] for n in names},
                         {"windows": r["windows"], "personalized": self.personalized, "decode": self.decode})
