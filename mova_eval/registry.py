"""Name → class registries for generators and metrics, discovered from the package modules.

Adding a metric or generator is adding one module: every module in ``mova_eval.metrics`` and
``mova_eval.generators`` is imported (they keep heavy imports inside ``load()``) and its classes with an
``info`` (metrics) or ``name`` (generators) are registered. Third-party packages register through the entry-point
groups ``mova_eval.metrics`` and ``mova_eval.generators``.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from importlib.metadata import entry_points

from mova_eval.errors import RegistryKeyError

_SKIP_MODULES = {"base", "frechet", "options", "stats"}


def _iter_modules(package: str):
    pkg = importlib.import_module(package)
    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name.startswith("_") or m.name in _SKIP_MODULES:
            continue
        yield importlib.import_module(f"{package}.{m.name}")


def _is_concrete(obj, base) -> bool:
    return isinstance(obj, type) and issubclass(obj, base) and obj is not base and not getattr(obj, "__abstract__", False)


@lru_cache(maxsize=None)
def metric_classes() -> dict:
    from mova_eval.metrics.base import Metric

    found: dict = {}
    modules = list(_iter_modules("mova_eval.metrics"))
    for ep in entry_points(group="mova_eval.metrics"):
        modules.append(ep.load())
    for mod in modules:
        objs = [mod] if isinstance(mod, type) else vars(mod).values()
        for obj in objs:
            if _is_concrete(obj, Metric) and obj.__module__ == getattr(mod, "__name__", obj.__module__):
                name = obj.info.name
                if name in found and found[name] is not obj:
                    raise RuntimeError(f"two metrics are named {name!r}: {found[name]} and {obj}")
                found[name] = obj
    return dict(sorted(found.items()))


@lru_cache(maxsize=None)
def generator_classes() -> dict:
    from mova_eval.generators.base import Generator

    found: dict = {}
    modules = list(_iter_modules("mova_eval.generators"))
    for ep in entry_points(group="mova_eval.generators"):
        modules.append(ep.load())
    for mod in modules:
        objs = [mod] if isinstance(mod, type) else vars(mod).values()
        for obj in objs:
            if _is_concrete(obj, Generator) and obj.__module__ == getattr(mod, "__name__", obj.__module__):
                if obj.name in found and found[obj.name] is not obj:
                    raise RuntimeError(f"two generators are named {obj.name!r}: {found[obj.name]} and {obj}")
                found[obj.name] = obj
    return dict(sorted(found.items()))


@lru_cache(maxsize=None)
def import_feature_modules() -> tuple[str, ...]:
    """Import the shared feature extractors (metrics/features/), which register the checkpoints they load."""
    return tuple(m.__name__ for m in _iter_modules("mova_eval.metrics.features"))


def get_metric_class(name: str):
    classes = metric_classes()
    if name not in classes:
        raise RegistryKeyError("metric", name, list(classes))
    return classes[name]


def get_generator_class(name: str):
    classes = generator_classes()
    if name not in classes:
        raise RegistryKeyError("generator", name, list(classes))
    return classes[name]
