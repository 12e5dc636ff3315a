"""Typed generator settings: what every ``generator.*`` key means, its type, and whether it changes the clip.

Each adapter declares one frozen dataclass of settings, every field made with one of three helpers:

- :func:`output` — the value changes what the model makes (steps, guidance, size, seed, negative prompt…). It is
  part of the generator's identity, so of the clip cache key and of every clip's provenance.
- :func:`runtime` — how or where the model runs (offload, batch size, URLs, timeouts, retries…). It is left out
  of the identity: changing it reuses cached clips.
- :func:`model` — names model files or a component (a checkpoint folder, a pipeline factory, a cascade stage).
  The identity carries what identifies it — the checkpoint fingerprint once ``load()`` has seen the files, the
  configured value before — so moving a weights folder does not invalidate cached clips, and replacing the
  files does.

A field made without one of these helpers is an error when the class is defined, so no setting can be left
undecided. :func:`parse` turns a config mapping into the dataclass: an unknown key or a value of the wrong type
is a :class:`~mova_eval.errors.ConfigError` that names ``generator.<key>`` and lists the known keys. Integers
given for float fields become floats (so ``guidance_scale=5`` and ``5.0`` are one identity).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Union

from mova_eval.errors import ConfigError

OUTPUT, RUNTIME, MODEL = "output", "runtime", "model"
_ROLE = "mova_eval.role"
_DOC = "mova_eval.doc"


def _field(role: str, default: Any, doc: str) -> Any:
    meta = {_ROLE: role, _DOC: doc}
    if isinstance(default, (dict, list, set)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    return field(default=default, metadata=meta)


def output(default: Any = None, doc: str = "") -> Any:
    """A setting that changes the clip: part of the identity (and so of the clip cache key)."""
    return _field(OUTPUT, default, doc)


def runtime(default: Any = None, doc: str = "") -> Any:
    """A setting of how or where the model runs; it never changes the clip and is left out of the identity."""
    return _field(RUNTIME, default, doc)


def model(default: Any = None, doc: str = "") -> Any:
    """A reference to model files or a component; the identity carries its fingerprint (see the module doc)."""
    return _field(MODEL, default, doc)


@dataclass(frozen=True)
class Settings:
    """Base of every settings dataclass (generators, and the cascade's audio stages): queries by role."""

    @classmethod
    def fields_by_role(cls, role: str) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(_ROLE) == role)

    @classmethod
    def describe(cls) -> dict[str, tuple[str, str, str]]:
        """``{key: (type, role, doc)}`` — for docs and error messages."""
        hints = _hints(cls)
        return {f.name: (_type_name(hints[f.name]), f.metadata.get(_ROLE, "?"), f.metadata.get(_DOC, ""))
                for f in dataclasses.fields(cls)}

    def output_values(self) -> dict[str, Any]:
        return {k: plain(getattr(self, k)) for k in sorted(self.fields_by_role(OUTPUT))}

    def as_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class GeneratorSettings(Settings):
    """The keys every generator accepts. Subclass it (as a frozen dataclass) to declare an adapter's own."""

    name: str = runtime("", "the registry name (the identity carries it separately)")
    label: str | None = runtime(None, "the model label results carry (default: the registry name)")
    batch_size: int | None = runtime(None, "requests the runner hands to generate() at once")


def check_declared(cls: type) -> None:
    """Refuse a settings class with a field whose role is not declared (made without output/runtime/model)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls) and issubclass(cls, Settings)):
        raise TypeError(f"{cls!r} must be a dataclass deriving from Settings (GeneratorSettings for a generator)")
    undeclared = [f.name for f in dataclasses.fields(cls) if f.metadata.get(_ROLE) not in (OUTPUT, RUNTIME, MODEL)]
    if undeclared:
        raise TypeError(f"{cls.__qualname__}: declare every setting with output(), runtime() or model() so the "
                        f"identity knows whether it changes the clip; undeclared: {undeclared}")
    _hints(cls)  # annotations must resolve


def parse(cls: type, config: Mapping[str, Any], prefix: str = "generator", owner: str = "") -> Any:
    """``config`` as an instance of the settings class ``cls``; ConfigError names the bad key and the known ones."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known = ", ".join(sorted(fields))
    who = f" of {owner}" if owner else ""
    unknown = sorted(k for k in config if k not in fields)
    if unknown:
        keys = ", ".join(f"{prefix}.{k}" for k in unknown)
        raise ConfigError(f"unknown option{'s' if len(unknown) > 1 else ''} {keys}{who}; known keys: {known}")
    hints = _hints(cls)
    values = {}
    for k, v in config.items():
        values[k] = _check(v, hints[k], f"{prefix}.{k}", who)
    return cls(**values)


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)  # each base's annotations in its own module
    except Exception as e:  # noqa: BLE001 — a class-definition error, reported with the class
        raise TypeError(f"{cls.__qualname__}: cannot resolve the settings' type annotations ({e})") from e


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)}]"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    pass


def _check(value: Any, tp: Any, key: str, who: str) -> Any:
    try:
        return _coerce(value, tp)
    except _Mismatch:
        raise ConfigError(f"{key}{who} must be {_type_name(tp)}, got {value!r} "
                          f"({type(value).__name__})") from None


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` checked against the annotation ``tp`` (ints widened to floats); _Mismatch when it does not fit."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
            return value
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = [a for a in typing.get_args(tp) if a is not Ellipsis] or [Any]
        return [_coerce(v, args[0]) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch
        vt = (typing.get_args(tp) or (str, Any))[1]
        return {str(k): _coerce(v, vt) for k, v in value.items()}
    raise TypeError(f"settings type {tp!r} is not supported (use bool, int, float, str, Literal, list, dict, Any)")


def plain(v: Any) -> Any:
    """Settings as JSON-ready values (lists for tuples, plain dicts)."""
    if isinstance(v, Mapping):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v
