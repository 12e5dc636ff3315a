"""Name → class registries for generators and metrics: the package's own modules, installed plug-ins, and plug-ins
named in the configuration.

Adding a metric or generator is adding one module: every module in ``mova_eval.metrics`` and
``mova_eval.generators`` is imported (they keep heavy imports inside ``load()``) and its concrete classes are
registered under their ``info.name`` (metrics) or ``name`` (generators). Code outside the package comes in two ways,
both naming it ``package.module:ClassName`` (one class) or ``package.module`` (every metric and generator class that
module defines):

* an installed distribution's entry point in the group ``mova_eval.metrics`` or ``mova_eval.generators``
  (``[project.entry-points."mova_eval.metrics"] my_metric = "my_pkg.metrics:MyMetric"``);
* the configuration's ``plugins`` list (``mova-eval run 'plugins=[my_pkg.metrics:MyMetric]'``), which
  :func:`use_plugins` registers — :func:`mova_eval.config.compose` and the runner call it.

A path that does not import, names nothing, or names something that is not a concrete Metric or Generator subclass
is a :class:`~mova_eval.errors.PluginError` (a ConfigError) naming where the path came from and what is wrong; so is
a plug-in whose name is already taken by another class.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeGuard, TypeVar

from mova_eval.errors import PluginError, RegistryKeyError

if TYPE_CHECKING:  # at run time _bases() imports them when first asked (importing the registry loads no base class)
    from mova_eval.generators.base import Generator
    from mova_eval.metrics.base import Metric

_C = TypeVar("_C")

_SKIP_MODULES = {"base", "frechet", "options", "stats"}
#: the two entry-point groups third-party distributions register in
METRIC_GROUP, GENERATOR_GROUP = "mova_eval.metrics", "mova_eval.generators"
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_PATH = re.compile(rf"^({_DOTTED})(?::({_DOTTED}))?$")

#: plug-ins named by the configuration's ``plugins`` (path → the classes it gave), in registration order
_CONFIG_PLUGINS: dict[str, tuple[type, ...]] = {}


def _iter_modules(package: str) -> Iterator[ModuleType]:
    pkg = importlib.import_module(package)
    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name.startswith("_") or m.name in _SKIP_MODULES:
            continue
        yield importlib.import_module(f"{package}.{m.name}")


def _is_concrete(obj: object, base: type[_C]) -> TypeGuard[type[_C]]:
    return isinstance(obj, type) and issubclass(obj, base) and obj is not base and not getattr(obj, "__abstract__", False)


def _bases() -> tuple[type[Metric], type[Generator]]:
    from mova_eval.generators.base import Generator
    from mova_eval.metrics.base import Metric

    return Metric, Generator


def _defined_in(mod: ModuleType) -> list[type]:
    """The concrete Metric and Generator classes a module defines (not those it imports)."""
    bases = _bases()
    return [obj for obj in vars(mod).values()
            if any(_is_concrete(obj, b) for b in bases) and obj.__module__ == mod.__name__]


def class_path(cls: type) -> str:
    """``package.module:ClassName`` of a class (how run logs and errors name a plug-in)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def load_plugin(path: Any, origin: str) -> tuple[type, ...]:
    """The Metric/Generator classes ``path`` names: ``package.module:ClassName`` gives that class,
    ``package.module`` every concrete metric and generator class the module defines. ``origin`` says where the path
    came from (``plugins[0]``, ``entry point 'x' of distribution 'y'``) for the error message."""
    syntax = "package.module:ClassName (or package.module)"
    if not isinstance(path, str) or not _PATH.match(path.strip()):
        raise PluginError(origin, path, f"is not of the form {syntax}")
    module_name, attr = _PATH.match(path.strip()).groups()  # type: ignore[union-attr]
    try:
        mod = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise PluginError(origin, path, f"cannot be imported: no module named {e.name!r} "
                                            "(is its package installed, or on PYTHONPATH?)") from e
        raise PluginError(origin, path, f"cannot be imported: importing module {module_name!r} failed: {e}") from e
    except Exception as e:  # the plug-in's own code raised while importing
        raise PluginError(origin, path, f"cannot be imported: importing module {module_name!r} raised "
                                        f"{type(e).__name__}: {e}") from e
    metric_base, gen_base = _bases()
    if attr is None:
        found = _defined_in(mod)
        if not found:
            raise PluginError(origin, path, "names a module that defines no concrete Metric or Generator class")
        return tuple(found)
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            have = ", ".join(c.__qualname__ for c in _defined_in(mod)) or "none"
            raise PluginError(origin, path, f"names nothing: module {module_name!r} has no attribute {attr!r} (its "
                                            f"metric and "
                                            f"generator classes: {have})")
        obj = getattr(obj, part)
    if not isinstance(obj, type) or not issubclass(obj, (metric_base, gen_base)):
        what = f"a {type(obj).__name__}" if not isinstance(obj, type) else f"the class {obj.__qualname__}"
        raise PluginError(origin, path, f"is {what}, not a subclass of mova_eval.metrics.base.Metric or "
                                        "mova_eval.generators.base.Generator")
    if getattr(obj, "__abstract__", False):
        raise PluginError(origin, path, "is an abstract base class (__abstract__ = True); name a concrete subclass")
    if issubclass(obj, metric_base) and not hasattr(obj, "info"):
        raise PluginError(origin, path, "is a Metric without an `info: MetricInfo` (its registry name comes from it)")
    if issubclass(obj, gen_base) and not isinstance(getattr(obj, "name", None), str):
        raise PluginError(origin, path, "is a Generator without a `name` (its registry name)")
    return (obj,)


def _entry_point_classes(group: str) -> list[tuple[type, str]]:
    out: list[tuple[type, str]] = []
    for ep in entry_points(group=group):
        dist = getattr(ep.dist, "name", None) or "?"
        origin = f"entry point {ep.name!r} of distribution {dist!r} (group {group})"
        out += [(cls, origin) for cls in load_plugin(ep.value, origin)]
    return out


def _collect(base: type[_C], package: str, group: str, key: Callable[[type[_C]], str]) -> dict[str, type[_C]]:
    found: dict[str, type[_C]] = {}
    origins: dict[str, str] = {}
    sources: list[tuple[type, str]] = [(cls, f"module {mod.__name__}") for mod in _iter_modules(package)
                                       for cls in _defined_in(mod)]
    sources += _entry_point_classes(group)
    sources += [(cls, f"plugins entry {path!r}") for path, classes in _CONFIG_PLUGINS.items() for cls in classes]
    for cls, origin in sources:
        if not _is_concrete(cls, base):
            continue
        name = key(cls)
        if name in found and found[name] is not cls:
            kind = "metric" if group == METRIC_GROUP else "generator"
            raise PluginError(origin, class_path(cls), f"is a {kind} named {name!r}, a name {class_path(found[name])}"
                                                       f" (from {origins[name]}) already has")
        found[name], origins[name] = cls, origin
    return dict(sorted(found.items()))


@lru_cache(maxsize=None)
def metric_classes() -> dict[str, type[Metric]]:
    metric_base, _ = _bases()
    return _collect(metric_base, "mova_eval.metrics", METRIC_GROUP, lambda c: c.info.name)


@lru_cache(maxsize=None)
def generator_classes() -> dict[str, type[Generator]]:
    _, gen_base = _bases()
    return _collect(gen_base, "mova_eval.generators", GENERATOR_GROUP, lambda c: c.name)


def use_plugins(paths: Iterable[Any] | None) -> list[type]:
    """Register the configuration's ``plugins`` (each ``package.module:ClassName`` or ``package.module``) and return
    their classes. Idempotent: a path registered before is not imported again. A bad path, or a plug-in whose name
    is taken, is a PluginError and leaves the registry as it was."""
    if paths is None:
        return []
    if isinstance(paths, str) or not isinstance(paths, (list, tuple)):
        raise PluginError("plugins", paths, "must be a list, e.g. plugins=[my_pkg.metrics:MyMetric]")
    classes: list[type] = []
    for i, path in enumerate(paths):
        key = path.strip() if isinstance(path, str) else path
        if key in _CONFIG_PLUGINS:
            classes += _CONFIG_PLUGINS[key]
            continue
        got = load_plugin(path, f"plugins[{i}]")
        _CONFIG_PLUGINS[key] = got
        _clear()
        try:
            metric_classes()
            generator_classes()
        except PluginError:
            del _CONFIG_PLUGINS[key]
            _clear()
            raise
        classes += got
    return classes


def forget_plugins() -> None:
    """Unregister every configuration plug-in (tests; a long-lived process switching configurations)."""
    _CONFIG_PLUGINS.clear()
    _clear()


def _clear() -> None:
    metric_classes.cache_clear()
    generator_classes.cache_clear()


@lru_cache(maxsize=None)
def import_feature_modules() -> tuple[str, ...]:
    """Import the shared feature extractors (metrics/features/), which register the checkpoints they load."""
    return tuple(m.__name__ for m in _iter_modules("mova_eval.metrics.features"))


def get_metric_class(name: str) -> type[Metric]:
    classes = metric_classes()
    if name not in classes:
        raise RegistryKeyError("metric", name, list(classes))
    return classes[name]


def get_generator_class(name: str) -> type[Generator]:
    classes = generator_classes()
    if name not in classes:
        raise RegistryKeyError("generator", name, list(classes))
    return classes[name]
