"""Import the reference Synchformer (hkchengrex/av-benchmark ``av_bench/synchformer``) for the parity tests.

av-benchmark is not on PyPI and nothing of it is vendored here. Point ``MOVA_EVAL_AVBENCH`` at a checkout (the
folder holding ``av_bench/``); ``MOVA_EVAL_AVBENCH_PATH`` may add folders to put first on ``sys.path`` (e.g. a
``pip install --target`` folder with ``transformers<5``, which its vendored ``modeling_ast.py`` needs: 5.x removed
``find_pruneable_heads_and_indices``). An installed ``av_bench`` package works too.

Two stand-ins make it import without its unused heavy dependencies (../shared/reference/metrics-2.md §6):
``timm.layers`` (only ``trunc_normal_`` and ``to_2tuple``, used at construction time; every weight is then replaced
by a loaded state_dict) when timm is not installed.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types

SETUP = ("set MOVA_EVAL_AVBENCH to a checkout of github.com/hkchengrex/av-benchmark (and MOVA_EVAL_AVBENCH_PATH to a "
         "folder with transformers<5 if the installed one is 5.x)")


def _timm_standin() -> None:
    if importlib.util.find_spec("timm") is not None:
        return
    import torch

    timm = types.ModuleType("timm")
    layers = types.ModuleType("timm.layers")
    layers.trunc_normal_ = torch.nn.init.trunc_normal_
    layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    for m in (timm, layers):
        m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)
    timm.layers = layers
    sys.modules.setdefault("timm", timm)
    sys.modules.setdefault("timm.layers", layers)


def reference_synchformer_module():
    """The ``av_bench.synchformer.synchformer`` module, or raise ImportError with what to set up."""
    for p in reversed([p for p in os.environ.get("MOVA_EVAL_AVBENCH_PATH", "").split(os.pathsep) if p]):
        if p not in sys.path:
            sys.path.insert(0, p)
    root = os.environ.get("MOVA_EVAL_AVBENCH")
    if root and root not in sys.path:
        sys.path.insert(0, root)
    if importlib.util.find_spec("av_bench") is None:
        raise ImportError("reference av-benchmark not found: " + SETUP)
    _timm_standin()
    try:
        return importlib.import_module("av_bench.synchformer.synchformer")
    except ImportError as e:
        raise ImportError(f"reference av_bench.synchformer does not import ({e}): " + SETUP) from e
