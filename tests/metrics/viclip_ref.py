"""Import the reference ViCLIP (OpenGVLab/InternVideo ``Data/InternVid/viclip``) for the parity tests.

Nothing of it is vendored here. Point ``MOVA_EVAL_VICLIP`` at the folder that holds the ``viclip/`` package, e.g.::

    mkdir -p /tmp/viclip_ref && git -C INTERNVIDEO_CHECKOUT archive HEAD Data/InternVid/viclip | tar -x -C /tmp/viclip_ref
    MOVA_EVAL_VICLIP=/tmp/viclip_ref/Data/InternVid pytest tests/metrics/test_clip_video_viclip.py

Two stand-ins make it import without dependencies the inference path does not use, each only when the real package
is missing: ``timm.models.layers.DropPath`` (the towers are built in ``eval()`` mode, where drop-path is the
identity; the stand-in refuses to run in training mode) with ``timm.models.registry.register_model`` (a no-op
decorator); ``pkg_resources.packaging`` (setuptools ≥ 81 has no ``pkg_resources``; ``packaging`` itself is used).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

ENV = "MOVA_EVAL_VICLIP"
SETUP = (f"set {ENV} to the folder holding viclip/ from github.com/OpenGVLab/InternVideo Data/InternVid "
         "(see tests/metrics/viclip_ref.py)")


def _standins() -> None:
    import torch

    if importlib.util.find_spec("timm") is None and "timm" not in sys.modules:
        class DropPath(torch.nn.Module):
            def __init__(self, p=0.0):
                super().__init__()
                self.p = p

            def forward(self, x):
                if self.training and self.p > 0:
                    raise RuntimeError("the DropPath stand-in only runs in eval mode")
                return x

        timm, models = types.ModuleType("timm"), types.ModuleType("timm.models")
        layers, registry = types.ModuleType("timm.models.layers"), types.ModuleType("timm.models.registry")
        layers.DropPath = DropPath  # type: ignore[attr-defined]
        registry.register_model = lambda fn: fn  # type: ignore[attr-defined]
        timm.models, models.layers, models.registry = models, layers, registry  # type: ignore[attr-defined]
        sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers,
                            "timm.models.registry": registry})
    if importlib.util.find_spec("pkg_resources") is None and "pkg_resources" not in sys.modules:
        import packaging.version

        pr = types.ModuleType("pkg_resources")
        pr.packaging = packaging  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = pr


def import_reference():
    """The reference ``viclip`` package (``viclip.viclip.ViCLIP``, ``viclip.simple_tokenizer``); ImportError with the
    set-up instruction when ``MOVA_EVAL_VICLIP`` is unset or wrong."""
    root = os.environ.get(ENV)
    if not root or not os.path.isfile(os.path.join(root, "viclip", "viclip_vision.py")):
        raise ImportError(SETUP)
    _standins()
    if root not in sys.path:
        sys.path.insert(0, root)
    pkg = importlib.import_module("viclip")
    importlib.import_module("viclip.viclip")
    importlib.import_module("viclip.simple_tokenizer")
    return pkg
