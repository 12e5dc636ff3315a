"""The Generator contract, checked for every registered generator (so a new adapter is covered without writing a
test): every setting's declared role holds for the identity (an output or model setting changes it, a runtime
setting does not), unknown and mistyped options are refused naming ``generator.<key>``, ``validate`` returns typed
problems, and ``availability`` returns the metrics' ``Availability``. Nothing here loads a model."""
from __future__ import annotations

import copy
import functools
import typing
from typing import Any, Literal

import pytest

from mova_eval.config import compose, group_options
from mova_eval.errors import ConfigError
from mova_eval.generators.base import Generator, Problem
from mova_eval.generators.settings import MODEL, OUTPUT, RUNTIME
from mova_eval.metrics.base import Availability
from mova_eval.registry import generator_classes
from mova_eval.suites import load_suite

NAMES = sorted(generator_classes())
PROBLEM_KINDS = {"unavailable", "unservable", "missing", "unused", "unknown", "bad file", "config"}


@pytest.fixture(scope="module")
def clip_dirs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("clips-a"), tmp_path_factory.mktemp("clips-b")
    manifest = a / "m.csv"
    manifest.write_text("item_id,path\n")
    return a, b, manifest


@functools.lru_cache(maxsize=None)
def _preset(name: str) -> dict[str, Any]:
    return compose([f"generator={name}"], require_all=False)["generator"] if name in group_options("generator") \
        else {"name": name}


def _config(name: str, clip_dirs) -> dict[str, Any]:
    cfg = copy.deepcopy(_preset(name))
    if name == "directory":
        cfg["path"] = str(clip_dirs[0])
    if name == "synthetic":
        cfg["tts"] = "none"  # the TTS engine's availability is not what these tests are about
    return cfg


# Values a generic "other value" cannot produce, because the adapter checks more than the type.
SPECIAL = {
    ("directory", "path"): lambda dirs: str(dirs[1]),
    ("directory", "manifest"): lambda dirs: str(dirs[2]),
    ("synthetic", "defects"): lambda dirs: {"silence": True},
    ("synthetic", "tts"): lambda dirs: "espeak",
    ("cascade", "video"): lambda dirs: {"name": "ltx2"},
    ("cascade", "audio"): lambda dirs: {"name": "mmaudio"},
    ("wan21_mmaudio", "video"): lambda dirs: {"name": "ltx2"},
    ("wan21_mmaudio", "audio"): lambda dirs: {"name": "audioldm2"},
}


def _other(tp: Any, value: Any) -> Any:
    """A valid value of type ``tp`` different from ``value``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return next(a for a in typing.get_args(tp) if a != value)
    if origin in (typing.Union, __import__("types").UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return _other(args[0], None)
        return _other(next(a for a in args if _fits(value, a)), value)
    if tp is bool:
        return not value
    if tp is int:
        return (value or 0) + 2  # even, so sizes stay valid
    if tp is float:
        return (value or 0.0) + 0.5
    if tp is str:
        return (value or "") + "-other"
    if origin is list:
        return [*(value or []), _other(typing.get_args(tp)[0], None)]
    if origin is dict or tp is dict:
        return {**(value or {}), "contract_key": 1}
    raise AssertionError(f"no other value for {tp}")


def _fits(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is not None:
        origin = list if origin is list else dict if origin is dict else origin
        return isinstance(value, origin)
    return isinstance(value, tp) and not (tp is int and isinstance(value, bool))


def _changed(name: str, cls, cfg: dict, key: str, clip_dirs) -> dict:
    hints = typing.get_type_hints(cls.Settings)
    current = cls(cfg).config[key]
    value = SPECIAL[(name, key)](clip_dirs) if (name, key) in SPECIAL else _other(hints[key], current)
    assert value != current
    return {**cfg, key: value}


def _cases(role_set: tuple[str, ...]):
    for name in NAMES:
        cls = generator_classes()[name]
        for key in sorted(f for role in role_set for f in cls.Settings.fields_by_role(role)):
            yield pytest.param(name, key, id=f"{name}.{key}")


@pytest.mark.parametrize("name,key", list(_cases((OUTPUT, MODEL))))
def test_identity_changes_with_every_output_and_model_setting(name, key, clip_dirs):
    cls = generator_classes()[name]
    cfg = _config(name, clip_dirs)
    assert cls(_changed(name, cls, cfg, key, clip_dirs)).identity() != cls(cfg).identity()


@pytest.mark.parametrize("name,key", list(_cases((RUNTIME,))))
def test_identity_ignores_every_runtime_setting(name, key, clip_dirs):
    cls = generator_classes()[name]
    cfg = _config(name, clip_dirs)
    assert cls(_changed(name, cls, cfg, key, clip_dirs)).identity() == cls(cfg).identity()


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_has_a_role_and_the_roles_cover_the_preset(name, clip_dirs):
    cls = generator_classes()[name]
    assert issubclass(cls, Generator)
    roles = {k: role for k, (_t, role, _d) in cls.Settings.describe().items()}
    assert set(roles.values()) <= {OUTPUT, RUNTIME, MODEL}
    assert set(_config(name, clip_dirs)) <= set(roles)  # the packaged preset uses only declared keys


@pytest.mark.parametrize("name", NAMES)
def test_unknown_and_mistyped_options_are_refused(name, clip_dirs):
    cls = generator_classes()[name]
    cfg = _config(name, clip_dirs)
    with pytest.raises(ConfigError, match=r"unknown option generator\.no_such_option\b.*known keys: .*\bname\b"):
        cls({**cfg, "no_such_option": 1})
    hints = typing.get_type_hints(cls.Settings)
    key = next(k for k in sorted(cls.Settings.fields_by_role(OUTPUT) + cls.Settings.fields_by_role(MODEL))
               if hints[k] is not Any)
    wrong = "a string" if typing.get_origin(hints[key]) is dict else {"a": "mapping"}
    with pytest.raises(ConfigError, match=rf"generator\.{key} of generator '{name}' must be "):
        cls({**cfg, key: wrong})
    av = cls.availability({**cfg, "no_such_option": 1})
    assert isinstance(av, Availability) and not av.ok and "generator.no_such_option" in av.reason


@pytest.mark.parametrize("name", NAMES)
def test_availability_is_typed(name, clip_dirs):
    av = generator_classes()[name].availability(_config(name, clip_dirs))
    assert isinstance(av, Availability)
    assert av.ok or av.reason  # a refusal always says why


@pytest.mark.parametrize("name", NAMES)
def test_validate_returns_typed_problems(name, clip_dirs):
    cls = generator_classes()[name]
    suite = load_suite(compose(["suite=smoke"])["suite"])
    problems = cls(_config(name, clip_dirs)).validate(suite, seeds=[0, 1])
    assert isinstance(problems, list)
    for p in problems:
        assert isinstance(p, Problem) and p.kind in PROBLEM_KINDS and p.message
        assert all(i in {it.id for it in suite.items} for i in p.items)
    if not cls.availability(_config(name, clip_dirs)).ok:
        assert any(p.kind == "unavailable" for p in problems)  # an unusable generator is never "no problems"


@pytest.mark.parametrize("name", [n for n in NAMES if n != "directory"])  # directory's CLI path: test_directory.py
def test_validate_through_the_cli(name, capsys):
    """`mova-eval validate suite=smoke generator=NAME` reports instead of crashing (issue 11: every model generator
    died with TypeError on ``seeds``); exit 1 exactly when there are problems."""
    from mova_eval.cli import main

    rc = main(["validate", "suite=smoke", f"generator={name}"])
    out = capsys.readouterr().out
    assert (rc, "no problems found" in out) in ((0, True), (1, False))
    if rc:
        assert "problem(s):" in out and "  - " in out.split("problem(s):")[1]
