"""Import the reference ImageBind model code (PyPI ``imagebind-unofficial`` 0.1.1, a packaging of
facebookresearch/ImageBind) for the parity tests, without its data module.

``imagebind/__init__.py`` imports ``imagebind.data`` (torchaudio, torchvision, pytorchvideo), which cannot load here,
so the package is entered through a bare package object whose ``__path__`` is the installed folder: only
``imagebind.models.*`` runs (../shared/reference/metrics-2.md §6). Those modules need ``timm.layers`` for
``DropPath``/``trunc_normal_`` at construction time; timm itself imports torchvision, so a two-name stand-in is served
while the modules import (drop-path is inactive in eval mode; every weight is then replaced by a loaded state_dict).
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types

import pytest


def _standin_timm() -> dict:
    import torch

    class DropPath(torch.nn.Module):
        def __init__(self, p=0.0):
            super().__init__()
            self.p = p

        def forward(self, x):
            assert not self.training, "stand-in DropPath is for eval only"
            return x

    timm = types.ModuleType("timm")
    layers = types.ModuleType("timm.layers")
    layers.trunc_normal_ = torch.nn.init.trunc_normal_
    layers.DropPath = DropPath
    models = types.ModuleType("timm.models")
    models.layers = layers
    timm.layers, timm.models = layers, models
    mods = {"timm": timm, "timm.layers": layers, "timm.models": models, "timm.models.layers": layers}
    for m in mods.values():
        m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)
    return mods


def reference():
    """(imagebind_model module, multimodal_preprocessors module) of the reference, or skip."""
    spec = importlib.util.find_spec("imagebind")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("imagebind-unofficial is not installed (pip install --no-deps -r requirements/test-nodeps.txt)")
    if "imagebind.models.imagebind_model" not in sys.modules:
        saved = {k: sys.modules.get(k) for k in ("imagebind", "timm", "timm.layers", "timm.models",
                                                 "timm.models.layers")}
        pkg = types.ModuleType("imagebind")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        sys.modules["imagebind"] = pkg
        sys.modules.update(_standin_timm())
        try:
            importlib.import_module("imagebind.models.imagebind_model")
        finally:
            for k, v in saved.items():
                if k == "imagebind":
                    continue
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
    return sys.modules["imagebind.models.imagebind_model"], sys.modules["imagebind.models.multimodal_preprocessors"]


def small_reference_model(seed: int = 0):
    """The reference ``ImageBindModel`` at a reduced width/depth (same key layout), seeded random weights, eval."""
    import torch

    ib, _ = reference()
    torch.manual_seed(seed)
    m = ib.ImageBindModel(vision_embed_dim=64, vision_num_blocks=2, vision_num_heads=4, text_embed_dim=48,
                          text_num_blocks=2, text_num_heads=4, audio_embed_dim=32, audio_num_blocks=2,
                          audio_num_heads=4, out_embed_dim=40, depth_embed_dim=16, depth_num_blocks=1,
                          depth_num_heads=2, thermal_embed_dim=16, thermal_num_blocks=1, thermal_num_heads=2,
                          imu_embed_dim=16, imu_num_blocks=1, imu_num_heads=2)
    with torch.no_grad():  # biases and LayerNorms start at 0/1: randomise every entry so a swapped one shows
        g = torch.Generator().manual_seed(seed + 1)
        for _name, p in m.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim < 2 else 0.2))
        sd = m.state_dict()
        sd["modality_postprocessors.text.1.log_logit_scale"].fill_(2.5)
    return m.eval()


SMALL = dict(vision_dim=64, vision_blocks=2, vision_heads=4, text_dim=48, text_blocks=2, text_heads=4, audio_dim=32,
             audio_blocks=2, audio_heads=4, out_dim=40)
