"""Compose the packaged Hydra config with command-line overrides, without Hydra's side effects in the cwd."""
from __future__ import annotations

from importlib import resources
from typing import Any, cast

from mova_eval.errors import ConfigError

GROUPS = ("suite", "generator", "metrics", "runtime")


def group_options(group: str) -> list[str]:
    folder = resources.files("mova_eval.conf").joinpath(group)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def compose(overrides: list[str] | tuple[str, ...] = (), *, require_all: bool = True) -> dict[str, Any]:
    """The composed config as a plain dict. ``require_all`` refuses values still ``???`` (a run needs them;
    listing and help do not)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("mova_eval.conf", version_base=None):
            cfg = hydra_compose("config", overrides=list(overrides))
        container = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad configuration: {e}") from e
    finally:
        GlobalHydra.instance().clear()
    if not isinstance(container, dict):  # a composed config is always a mapping of str keys
        raise ConfigError(f"bad configuration: composed to a {type(container).__name__}, not a mapping")
    data = cast(dict[str, Any], container)
    if require_all:
        _check_required(data)
    from mova_eval.registry import use_plugins

    use_plugins(data.get("plugins"))  # a bad package.module:ClassName is refused here, before anything runs
    return data


def _check_required(cfg: dict[str, Any], prefix: str = "") -> None:
    for k, v in cfg.items():
        if v == "???":
            raise ConfigError(f"{prefix}{k} is required (e.g. mova-eval run {prefix}{k}=...)")
        if isinstance(v, dict):
            _check_required(v, f"{prefix}{k}.")
