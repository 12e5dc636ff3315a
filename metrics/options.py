"""Typed metric options: every metric declares its ``metrics.options.<metric>.*`` keys as a frozen dataclass.

A metric sets ``Options = SomeDataclass`` (fields with types and defaults, built with :func:`option`); the base class
parses the user's mapping into it once, in ``__init__``. An unknown key or a value of the wrong type is a
:class:`~mova_eval.errors.ConfigError` naming ``metrics.options.<metric>.<key>`` and listing the known keys, so a
typo never silently falls back to a default (and never prints a traceback).

Each field says what it changes (``role``):

* ``OUTPUT`` — the per-item values, or a set-level metric's per-clip features: part of the cache token, so changing
  it recomputes instead of reusing a cached value;
* ``SET`` — only a set-level metric's ``compute`` (reference, bootstrap, KID…): computed afresh every run, never
  cached, so not part of the token;
* ``RUNTIME`` — speed or memory only (a batch size, thread count): not part of the token.

An option that chooses between named protocols (a decode, a mode, a published variant) says so with ``protocol``:
``True`` when every output depends on the choice, a tuple of output names (the default ones) when only those do,
``False`` when its values are not protocols (an implementation of the same model, a parameter the run log
records). Each value of a protocol option must give the outputs it affects names of their own (``av_align`` →
``av_align_corrected``), so two variants never share an output name; tests/contracts/test_metric_contracts.py
checks that for every registered metric, and that every enumerable (``Literal`` or bool) option that changes
values declares ``protocol``.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Mapping, Union

from mova_eval.errors import ConfigError

OUTPUT, SET, RUNTIME = "output", "set", "runtime"
ROLES = (OUTPUT, SET, RUNTIME)


def option(default: Any = None, *, role: str = OUTPUT, help: str = "",  # noqa: A002 - mirrors argparse
           protocol: bool | tuple[str, ...] | None = None) -> Any:
    """A declared option: its default, what it changes (``role``), one line of help, and whether its values are
    named protocols whose outputs carry their own names (``protocol``, see the module docstring)."""
    if role not in ROLES:
        raise ValueError(f"option role must be one of {ROLES}, got {role!r}")
    return dataclasses.field(default=default, metadata={"role": role, "help": help, "protocol": protocol})


def protocol_of(options_cls: type, key: str) -> bool | tuple[str, ...] | None:
    """What an option declared as ``protocol`` (None: not declared)."""
    for f in dataclasses.fields(options_cls):
        if f.name == key:
            return f.metadata.get("protocol")
    raise KeyError(key)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a metric that takes none."""


def known_keys(options_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(options_cls)]


def role_of(options_cls: type, key: str) -> str:
    for f in dataclasses.fields(options_cls):
        if f.name == key:
            return str(f.metadata.get("role", OUTPUT))
    raise KeyError(key)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, getattr(tp, "__name__",
                                                                                                        str(tp)))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value converted to ``tp``). bool is never taken for a number, nor a number for a bool."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin is Literal:  # True == 1, so the type must match as well
        return any(value == a and type(value) is type(a) for a in typing.get_args(tp)), value
    if origin in (Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, v = _coerce(value, arm)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, None
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, value
        (arm, *_) = typing.get_args(tp) or (Any,)
        out = []
        for x in value:
            ok, v = _coerce(x, arm)
            if not ok:
                return False, value
            out.append(v)
        return True, tuple(out)
    return isinstance(value, tp), value


def parse(options_cls: type, metric: str, given: Mapping[str, Any] | None) -> Any:
    """The user's ``metrics.options.<metric>`` mapping as an instance of ``options_cls``, or a ConfigError."""
    given = dict(given or {})
    keys = known_keys(options_cls)
    known = ", ".join(keys) if keys else "none (this metric takes none)"
    for k in given:
        if k not in keys:
            raise ConfigError(f"metrics.options.{metric}.{k}: unknown option; known: {known}")
    hints = typing.get_type_hints(options_cls)
    helps = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(options_cls)}
    values = {}
    for k, v in given.items():
        ok, conv = _coerce(v, hints[k])
        if not ok:
            raise ConfigError(f"metrics.options.{metric}.{k} must be {_describe(hints[k])}, got {v!r}"
                              + (f" ({helps[k]})" if helps[k] else ""))
        values[k] = conv
    return options_cls(**values)


def token_part(opts: Any, roles: tuple[str, ...] = (OUTPUT,)) -> dict[str, Any]:
    """The options whose role is in ``roles`` (what belongs in a cache token)."""
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)
            if f.metadata.get("role", OUTPUT) in roles}
