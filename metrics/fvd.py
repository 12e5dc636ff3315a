"""FVD — Fréchet Video Distance between generated clips and named reference statistics, under a named protocol.

FVD numbers are protocol-dominated (``docs/metrics/fvd.md``), so the protocol is an option and is recorded:

=================  ==========================================  =====================================  ==========
protocol           detector / weights                           input                                  covariance
=================  ==========================================  =====================================  ==========
``fvd_styleganv``  StyleGAN-V TorchScript ``i3d_torchscript``  uint8, ``rescale=True, resize=True``    biased 1/N
                                                                (the script's own resize to 224)
``fvd_tf``         the same TorchScript (port of the tf-hub    TF1 ``resize_bilinear`` to 224, then    unbiased
                   I3D the TensorFlow original uses)           ``2x/255−1``; script flags False        N−1
``fvd_cdfvd``      our I3D + TATS ``i3d_pretrained_400.pt``    ``F.interpolate`` bilinear to 224,      biased 1/N
                                                                ``2x/255−1``
=================  ==========================================  =====================================  ==========

Features: the 400 I3D logits averaged over time, from the first 16 consecutive frames of each clip at its own
frame rate (option ``fps`` resamples first; ``stride`` takes every k-th frame) — deterministic, as StyleGAN-V does
for generated clips (offset 0). A clip with fewer than ``16·stride`` frames is excluded with the reason (StyleGAN-V's
``discard_short_videos``); clips are never looped or repeated to reach a count (cd-fvd's default repeats videos to
reach 2048; we do not). Options: ``reference`` (a name built by ``mova-eval reference build``; required),
``protocol``, ``fps``, ``stride``, ``bootstrap`` (replicates for the CI, default 200), ``kid`` (default true).

Output names carry the protocol: ``fvd``/``fvd_kid`` for the default ``fvd_styleganv``, ``fvd_tf``/``fvd_tf_kid``
and ``fvd_cdfvd``/``fvd_cdfvd_kid`` for the others, so numbers of two protocols never share a name (earlier runs
wrote ``fvd`` for all three; their run.json names the protocol).
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from mova_eval import references, weights
from mova_eval.context import RunContext
from mova_eval.errors import ConfigError, MediaError, MetricUnavailable
from mova_eval.metrics import frechet
from mova_eval.metrics.base import SET_LEVEL, Availability, Card, MetricInfo, Output, ReferenceMetric, SetResult
from mova_eval.metrics.features import i3d
from mova_eval.metrics.options import SET, option
from mova_eval.spec import Clip, SuiteItem

NUM_FRAMES = 16


@dataclass(frozen=True)
class Protocol:
    name: str
    weights: str
    resize: str  # "script" | "tf1" | "torch"
    unbiased: bool
    reference: str


PROTOCOLS = {
    "fvd_styleganv": Protocol("fvd_styleganv", i3d.TORCHSCRIPT.name, "script", False,
                              "universome/stylegan-v src/metrics/frechet_video_distance.py (fvd2048_16f)"),
    "fvd_tf": Protocol("fvd_tf", i3d.TORCHSCRIPT.name, "tf1", True,
                       "google-research frechet_video_distance (tf-hub I3D via StyleGAN-V's port; TF-GAN math)"),
    "fvd_cdfvd": Protocol("fvd_cdfvd", i3d.TATS.name, "torch", False,
                          "songweige/content-debiased-fvd cdfvd/fvd.py (model='i3d')"),
}
DEFAULT_PROTOCOL = "fvd_styleganv"


def _outputs(protocol: str) -> tuple[Output, Output]:
    """The outputs of one protocol: ``fvd``/``fvd_kid`` for the default, ``<protocol>``/``<protocol>_kid`` else."""
    name = "fvd" if protocol == DEFAULT_PROTOCOL else protocol
    tag = f" ({protocol})"
    return (Output(name, "lower", "", "Fréchet Video Distance to the reference statistics (I3D logits)" + tag),
            Output(f"{name}_kid", "lower", "", "KID (unbiased MMD², cubic polynomial kernel) on the same features"
                   + tag))


class ShortClipError(MediaError):
    """The clip has fewer frames than the protocol's window; it is excluded, never looped."""


@dataclass(frozen=True)
class FVDOptions:
    """``metrics.options.fvd.*``. Only ``protocol``, ``fps`` and ``stride`` change the cached features."""

    protocol: Literal["fvd_styleganv", "fvd_tf", "fvd_cdfvd"] = option(DEFAULT_PROTOCOL, protocol=True, help="feature protocol "
                                                                                 "(fvd_tf, fvd_cdfvd: outputs named after it)")
    fps: float | None = option(None, help="resample the video to this frame rate first (null: as decoded)")
    stride: int = option(1, help="take every stride-th frame of the 16")

    reference: str | None = option(None, role=SET, help="NAME of reference statistics (mova-eval reference build)")
    reference_from: str | None = option(None, role=SET, help="set by the runner: who chose the reference")
    bootstrap: int | None = option(None, role=SET, help="bootstrap replicates for the CI (null: automatic)")
    kid: bool = option(True, role=SET, protocol=False, help="also report KID (adds an output)")
    seed: int = option(0, role=SET, help="seed of the bootstrap and KID subsets")


class FVD(ReferenceMetric):
    Options = FVDOptions
    info = MetricInfo(
        name="fvd",
        outputs=_outputs(DEFAULT_PROTOCOL),
        variant_outputs=tuple(o for p in PROTOCOLS if p != DEFAULT_PROTOCOL for o in _outputs(p)),
        description="Fréchet Video Distance under a named protocol (fvd_styleganv, fvd_tf, fvd_cdfvd)",
        needs=frozenset({"video"}),
        extra="video",
        packages=("torch",),
        weights=(),  # depends on the protocol: availability() and load() check it
        aggregation=SET_LEVEL,
        version="1",
        reference="StyleGAN-V / TF original / cd-fvd, per protocol (docs/metrics/fvd.md)",
        card=Card(
            ranges=(
                ('fvd', '[0, ∞)'),
                ('fvd_kid', '(−∞, ∞) (unbiased MMD², ≈ 0 for matching sets)'),
                *((n, r) for p in PROTOCOLS if p != DEFAULT_PROTOCOL
                  for n, r in ((p, '[0, ∞)'), (f"{p}_kid", '(−∞, ∞) (unbiased MMD²)'))),
            ),
            scale='×1 (published FVDs differ mostly by protocol and n; the protocol is in every summary note)',
            tables=(
                "none on Verse-Bench (not in the MOVA toolkit or Verse-Bench's tool)",
            ),
            reference_values=(
                'protocol regression vectors in tests/metrics/test_fvd_regression.py (real weights only)',
            ),
            docs='docs/metrics/fvd.md',
        ),
    )

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        name = self.opts.protocol
        if name not in PROTOCOLS:
            raise ConfigError(f"metrics.options.fvd.protocol: unknown protocol {name!r}; choose one of "
                              f"{sorted(PROTOCOLS)}")
        self.protocol = PROTOCOLS[name]
        if name != DEFAULT_PROTOCOL:  # its own output names: two protocols never share one
            self.info = dataclasses.replace(type(self).info, outputs=_outputs(name))
        self.fps = self.opts.fps
        self.stride = self.opts.stride
        if self.stride < 1:
            raise ConfigError(f"metrics.options.fvd.stride must be ≥ 1, got {self.stride}")
        self.model = None
        self.reference = None

    # ----------------------------------------------------------------------------------------- loading
    @classmethod
    def availability(cls, context: RunContext | None = None) -> Availability:
        """Runnable when torch imports and at least one protocol's weights are present (load() checks the chosen
        protocol's weights and the reference statistics)."""
        base = super().availability(context)
        if not base.ok:
            return base
        present = [p for p in PROTOCOLS.values() if weights.fingerprint(p.weights, context) != "absent"]
        if not present:
            return Availability(False, f"I3D weights are missing ({DEFAULT_PROTOCOL} needs {i3d.TORCHSCRIPT.name!r})",
                                f"mova-eval weights fetch {i3d.TORCHSCRIPT.name}")
        return Availability(True)

    def load_extractor(self) -> None:
        path = weights.resolve(self.protocol.weights, self.context)
        self.model = (i3d.load_torchscript(path, self.device) if self.protocol.weights == i3d.TORCHSCRIPT.name
                      else i3d.load_i3d(path, self.device))

    def load_reference(self) -> None:
        name = self.options.get("reference")
        if not name:
            raise MetricUnavailable(self.info.name, "no reference statistics chosen (set metrics.options.fvd."
                                    "reference=NAME, or declare it in the suite: references: {fvd: NAME})", references.build_command("NAME", "fvd", self.protocol.name))
        try:
            ref = references.load(str(name), metric="fvd", protocol=self.protocol.name, context=self.context)
        except references.ReferenceError as e:
            raise MetricUnavailable(self.info.name, str(e).split(" — fix:")[0], e.command) from e
        self.reference = references.check(ref, "fvd", self.protocol.name, self.extractor_id())

    def load(self) -> None:
        self.load_extractor()
        self.load_reference()

    @property
    def protocol_name(self) -> str:
        return self.protocol.name

    def extractor_id(self) -> dict:
        return {"protocol": self.protocol.name, "weights": self.protocol.weights,
                "weights_sha256": weights.fingerprint(self.protocol.weights, self.context), "fps": self.fps, "stride": self.stride,
                "frames": NUM_FRAMES, "version": self.info.version}

    def cache_token(self) -> str:
        """Only what changes the features (the reference, CI and KID settings do not)."""
        return json.dumps(self.extractor_id(), sort_keys=True, default=str)

    # ----------------------------------------------------------------------------------------- features
    def frames(self, clip: Clip) -> np.ndarray:
        from mova_eval.media import VideoPreset

        video = clip.video_for(VideoPreset(fps=float(self.fps), name=f"fvd{self.fps}")) if self.fps else clip.video
        need = (NUM_FRAMES - 1) * self.stride + 1
        if video is None or video.shape[0] < need:
            have = 0 if video is None else video.shape[0]
            raise ShortClipError(clip.path, f"has {have} frames{' at %g fps' % self.fps if self.fps else ''}; FVD "
                                 f"({self.protocol.name}) needs {need} consecutive frames — excluded, not looped")
        return video[: need : self.stride]

    def features(self, clip: Clip, item: SuiteItem) -> np.ndarray:
        if self.model is None:
            self.load_extractor()
        emb = self.embed(self.frames(clip)[None])
        return frechet.pack_features(emb, fps=float(self.fps or clip.fps or math.nan), frames=clip.video.shape[0])

    def embed(self, videos: np.ndarray) -> np.ndarray:
        """uint8 [B, 16, H, W, 3] → float32 [B, 400] under this protocol's preprocessing."""
        import torch

        with torch.no_grad():
            if self.protocol.resize == "script":
                x = torch.from_numpy(np.array(videos)).permute(0, 4, 1, 2, 3).to(self.device)
                out = self.model(x, rescale=True, resize=True, return_features=True)
            else:
                resize = i3d.resize_bilinear_tf1 if self.protocol.resize == "tf1" else i3d.resize_bilinear_torch
                x = i3d.to_unit_range(resize(videos)).to(self.device)
                out = (self.model(x, rescale=False, resize=False, return_features=True)
                       if self.protocol.weights == i3d.TORCHSCRIPT.name else self.model(x))
        out = out.float().cpu().numpy()
        if not np.isfinite(out).all():
            raise frechet.NonFiniteFeaturesError("I3D produced NaN/infinite features")
        return out

    # ----------------------------------------------------------------------------------------- set level
    def compute(self, features: Sequence[np.ndarray], items: Sequence[SuiteItem]) -> SetResult:
        if self.reference is None:
            self.load_reference()
        unpacked = [frechet.unpack_features(f) for f in features]
        rep = frechet.distance_report([e for e, _ in unpacked], self.reference.stats, self.reference.features,
                                      unbiased=self.protocol.unbiased, n_boot=_opt_int(self.options.get("bootstrap")),
                                      with_kid=bool(self.options.get("kid", True)), seed=int(self.options.get("seed", 0)),
                                      clusters=[it.id for it in items])
        sha = weights.fingerprint(self.protocol.weights, self.context)
        notes = [f"protocol {self.protocol.name} ({self.protocol.weights} sha256 {sha[:12]}), reference "
                 f"{self.reference.name!r} (chosen by {references.reference_source('fvd', self.options)})", rep.note]
        rates = Counter(round(m.get("fps", math.nan), 3) for _, m in unpacked)
        if len(rates) > 1:
            notes.append("WARNING: mixed frame rates " + ", ".join(f"{k:g} fps×{v}" for k, v in sorted(rates.items()))
                         + " — 16 frames span different durations; set metrics.options.fvd.fps to resample")
        ref_fps = self.reference.meta.get("fps_counts")
        if ref_fps and not self.fps and set(map(float, ref_fps)) != set(rates):
            notes.append(f"WARNING: reference frame rates {ref_fps} differ from the generated clips'")
        fvd, kid = (o.name for o in self.info.outputs)
        return SetResult({fvd: rep["distance"], **({kid: rep["kid"]} if "kid" in rep else {})},
                         ci={fvd: rep.ci["distance"]} if "distance" in rep.ci else {}, note="; ".join(notes),
                         details=rep.details)

    def reference_meta(self, features: Sequence[np.ndarray]) -> dict:
        """What ``reference build`` records beside the statistics."""
        rates = Counter(frechet.unpack_features(f)[1].get("fps", math.nan) for f in features)
        return {"fps_counts": {f"{k:g}": v for k, v in sorted(rates.items())}}


def _opt_int(v) -> int | None:
    return None if v is None else int(v)
