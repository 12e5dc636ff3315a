"""The run context: the process-level settings every stage needs, built once and passed explicitly.

A :class:`RunContext` holds the cache root, the folders searched for weights, the device and the offline flag.
The runner builds one from the composed configuration (``runtime.cache_dir``, ``runtime.device``,
``runtime.offline``) with environment variables only as *defaults* read once while building it
(``MOVA_EVAL_CACHE``, ``MOVA_EVAL_WEIGHTS``, ``HF_HUB_OFFLINE``); it is then handed down plan → generate → score →
aggregate → finalise, to the metrics, :class:`~mova_eval.cache.Cache`, the references, the weights lookup,
``merge`` and ``sanity``. Nothing in the package writes ``os.environ`` to carry these settings.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FALSE = ("", "0", "false", "no", "off")


def _flag(value: object) -> bool:
    return str(value).strip().lower() not in _FALSE


def default_cache_root(env: Mapping[str, str] | None = None) -> Path:
    """``$MOVA_EVAL_CACHE`` when set, else the user cache dir (``platformdirs``)."""
    env = os.environ if env is None else env
    if env.get("MOVA_EVAL_CACHE"):
        return Path(env["MOVA_EVAL_CACHE"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mova-eval"))


@dataclass(frozen=True)
class RunContext:
    """Where the cache and the weights live, which device to use, and whether hubs may be asked."""

    cache_root: Path
    #: folders of checkpoints users already have (``MOVA_EVAL_WEIGHTS``), searched before ``weights_dir``
    weights_dirs: tuple[Path, ...] = ()
    device: str = "cpu"
    offline: bool = True

    @property
    def weights_dir(self) -> Path:
        """The folder ``mova-eval weights fetch`` downloads into (and where pins.json lives)."""
        return self.cache_root / "weights"

    def weights_search_dirs(self) -> tuple[Path, ...]:
        return (*self.weights_dirs, self.weights_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, device: str = "cpu") -> RunContext:
        """The context the environment describes (for commands without a composed config, and as the defaults)."""
        env = os.environ if env is None else env
        dirs = tuple(Path(p).expanduser() for p in env.get("MOVA_EVAL_WEIGHTS", "").split(os.pathsep) if p)
        return cls(cache_root=default_cache_root(env), weights_dirs=dirs, device=device,
                   offline=_flag(env.get("HF_HUB_OFFLINE", "0")))

    @classmethod
    def from_config(cls, rt: Mapping[str, Any], env: Mapping[str, str] | None = None, *,
                    device: str = "cpu") -> RunContext:
        """The context of a run: ``runtime.cache_dir`` / ``runtime.offline`` override the environment's defaults;
        ``device`` is the already resolved ``runtime.device``."""
        base = cls.from_env(env, device=device)
        root = Path(str(rt["cache_dir"])).expanduser() if rt.get("cache_dir") else base.cache_root
        offline = _flag(rt["offline"]) if rt.get("offline") is not None else base.offline
        return cls(cache_root=root, weights_dirs=base.weights_dirs, device=device, offline=offline)
