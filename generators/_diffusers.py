"""Loading diffusers pipelines the same way for every diffusers-based adapter (LTX-2, Wan2.1, AudioLDM 2).

``pipeline_factory`` (``"module:callable"``) replaces ``from_pretrained`` — the tests build tiny randomly
initialised pipelines from config that way, with no download. Offload modes mirror MOVA's: none | cpu | group.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from mova_eval.errors import MissingDependencyError
from mova_eval.generators._common import call_factory, checkpoint_fingerprint, require, resolve_checkpoint

DIFFUSERS_INSTALL = "pip install 'mova-eval[generators]'   (diffusers>=0.42; LTX2Pipeline needs diffusers>=0.37)"


def load_pipeline(class_name: str, config: Mapping[str, Any], device: str, what: str) -> tuple[Any, str | None]:
    """(pipeline, checkpoint fingerprint or None). Raises MissingDependencyError / a checkpoint error with the fix."""
    import torch

    diffusers = require("diffusers", what, DIFFUSERS_INSTALL)
    if not hasattr(diffusers, class_name):
        raise MissingDependencyError(
            f"{what} (diffusers.{class_name}, not in diffusers {diffusers.__version__})", "diffusers",
            command="pip install -U 'diffusers>=0.42'")
    dtype = getattr(torch, str(config.get("dtype") or "bfloat16"))
    factory = config.get("pipeline_factory")
    fp = None
    if factory:
        pipe = call_factory(str(factory))
    else:
        ref = config.get("checkpoint") or config.get("model_id")
        path = resolve_checkpoint(ref, what, f"huggingface-cli download {config.get('model_id')}")
        fp = checkpoint_fingerprint(path)
        pipe = getattr(diffusers, class_name).from_pretrained(str(path), torch_dtype=dtype)
    place(pipe, config, device)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe, fp


def diffusers_weights_ready(config: Mapping[str, Any]) -> tuple[bool, str, str | None]:
    from mova_eval.generators._common import weights_ready

    if config.get("pipeline_factory"):
        return True, "", None
    ref = config.get("checkpoint") or config.get("model_id")
    return weights_ready(ref, f"huggingface-cli download {config.get('model_id')}")


def place(pipe, config: Mapping[str, Any], device: str) -> None:
    import torch

    offload = str(config.get("offload") or "none")
    if offload == "cpu" and device.startswith("cuda"):
        pipe.enable_model_cpu_offload()
    elif offload == "group" and device.startswith("cuda"):
        pipe.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                  offload_type="leaf_level", use_stream=True)
    elif offload not in ("none", "cpu", "group"):
        raise ValueError(f"offload must be none, cpu or group; got {offload!r}")
    else:
        pipe.to(device)


def torch_generator(device: str, seed: int):
    import torch

    return torch.Generator(device="cpu" if not device.startswith("cuda") else device).manual_seed(int(seed))


def diffusers_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diffusers")
    except PackageNotFoundError:
        return None


def exists(path: str | None) -> bool:
    return bool(path) and Path(str(path)).expanduser().exists()
