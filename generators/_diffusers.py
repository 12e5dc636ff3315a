"""Loading diffusers pipelines the same way for every diffusers-based adapter (LTX-2, Wan2.1, AudioLDM 2).

``pipeline_factory`` (``"module:callable"``) replaces ``from_pretrained`` — the tests build tiny randomly
initialised pipelines from config that way, with no download. Offload modes mirror MOVA's: none | cpu | group.

Quirk (the Wan2.1 bug this module fixes): diffusers schedulers name the flow-matching shift differently —
``FlowMatchEulerDiscreteScheduler`` has ``shift``, ``UniPCMultistepScheduler`` / ``DPMSolverMultistepScheduler``
(Wan2.1's published scheduler is UniPC) have ``flow_shift``, which acts only with ``use_flow_sigmas=True`` — and
with ``use_dynamic_shifting=True`` (LTX-2's published FlowMatchEuler) either key is ignored in favour of a
resolution-dependent shift. And ``from_config`` silently resets every key named in the config's
``_use_default_values`` (keys the scheduler was built without), so overriding such a key needs that list edited.
:func:`set_flow_shift` puts a configured shift where the pipeline's own scheduler reads it, or refuses, so the
recorded setting is the one the sampler used.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mova_eval.errors import ConfigError, MissingDependencyError
from mova_eval.generators.base import ModelSettings
from mova_eval.generators.checkpoints import call_factory, require, resolve_checkpoint, weights_ready
from mova_eval.generators.settings import model, output, runtime
from mova_eval.metrics.base import Availability

DIFFUSERS_INSTALL = "pip install 'mova-eval[generators]'   (diffusers>=0.42; LTX2Pipeline needs diffusers>=0.37)"


@dataclass(frozen=True)
class DiffusersSettings(ModelSettings):
    """Keys every diffusers-based video adapter shares."""

    model_id: str | None = output(None, "the Hugging Face id of the diffusers checkpoint (names the model)")
    checkpoint: str | None = model(None, "a local diffusers folder; null = model_id from the Hugging Face cache")
    pipeline_factory: str | None = model(None, '"module:callable" returning a pipeline instead of from_pretrained '
                                                "(tests use a tiny random one)")
    dtype: str = output("bfloat16", "torch dtype of the weights (changes the numerics)")
    offload: Literal["none", "cpu", "group"] = runtime("cpu", "none | cpu (model offload) | group (layer-wise)")
    num_inference_steps: int = output(50, "sampling steps")
    guidance_scale: float = output(5.0, "classifier-free guidance scale")
    negative_prompt: str | None = output(None, "negative prompt (null = empty)")
    max_sequence_length: int | None = output(None, "text-encoder token limit (null = the pipeline's default)")
    flow_shift: float | None = output(None, "flow-matching shift put into the pipeline's scheduler, whatever its "
                                            "class calls it (null = the checkpoint's scheduler config)")


def load_pipeline(class_name: str, *, model_id: str | None, checkpoint: str | None, pipeline_factory: str | None,
                  dtype: str, offload: str, device: str, what: str, offline: bool) -> tuple[Any, Path | None]:
    """(pipeline, the checkpoint folder it was loaded from — None for a factory). Raises MissingDependencyError /
    CheckpointMissingError with the fix."""
    import torch

    diffusers = require("diffusers", what, DIFFUSERS_INSTALL)
    if not hasattr(diffusers, class_name):  # an optional class of the module, not a protocol check
        raise MissingDependencyError(
            f"{what} (diffusers.{class_name}, not in diffusers {diffusers.__version__})", "diffusers",
            command="pip install -U 'diffusers>=0.42'")
    torch_dtype = getattr(torch, str(dtype or "bfloat16"))
    path = None
    if pipeline_factory:
        pipe = call_factory(str(pipeline_factory))
    else:
        path = resolve_checkpoint(checkpoint or model_id, what, f"huggingface-cli download {model_id}", offline=offline)
        pipe = getattr(diffusers, class_name).from_pretrained(str(path), torch_dtype=torch_dtype)
    place(pipe, offload, device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, path


def diffusers_weights_ready(model_id: str | None, checkpoint: str | None, pipeline_factory: str | None) -> Availability:
    if pipeline_factory:
        return Availability(True)
    return weights_ready(checkpoint or model_id, f"huggingface-cli download {model_id}")


def set_flow_shift(pipe, shift: float, key: str = "generator.flow_shift") -> dict[str, Any]:
    """Make the pipeline's scheduler sample with the fixed flow shift ``shift`` (see the module doc); returns what
    was set, for provenance. ConfigError when this scheduler cannot take a fixed flow shift."""
    sched = pipe.scheduler
    cfg = dict(sched.config)
    name = type(sched).__name__
    if "flow_shift" in cfg:
        if not cfg.get("use_flow_sigmas"):
            raise ConfigError(f"{key}={shift:g}: the pipeline's {name} does not use flow sigmas "
                              "(use_flow_sigmas=false), so a flow shift would not reach the sampler")
        change: dict[str, Any] = {"flow_shift": float(shift)}
    elif "shift" in cfg:
        change = {"shift": float(shift)}
    else:
        raise ConfigError(f"{key}={shift:g}: the pipeline's scheduler {name} has no flow shift "
                          "(neither 'shift' nor 'flow_shift' in its config); leave it null")
    if cfg.get("use_dynamic_shifting"):  # a resolution-dependent shift would override the fixed one
        change["use_dynamic_shifting"] = False
    # diffusers' from_config drops every key listed in the config's ``_use_default_values`` (the keys the
    # scheduler was built without) in favour of the class default — a changed key must leave that list
    cfg["_use_default_values"] = [k for k in cfg.get("_use_default_values", []) if k not in change]
    new = type(sched).from_config({**cfg, **change})
    wrong = {k: new.config[k] for k, v in change.items() if new.config[k] != v}
    if wrong:
        raise ConfigError(f"{key}={shift:g}: {name} did not take {wrong}")
    pipe.scheduler = new
    return {"scheduler": name, **change}


def place(pipe, offload: str, device: str) -> None:
    import torch

    if offload == "cpu" and device.startswith("cuda"):
        pipe.enable_model_cpu_offload()
    elif offload == "group" and device.startswith("cuda"):
        pipe.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                  offload_type="leaf_level", use_stream=True)
    elif offload not in ("none", "cpu", "group"):
        raise ConfigError(f"offload must be none, cpu or group; got {offload!r}")
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
