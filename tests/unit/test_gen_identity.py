"""One identity rule for every generator (generators/settings.py, ``Generator.identity``), typed options, and the
regression for MOVA's ``ignore_first_frame`` (issue 11: it switched IT2VA/T2VA yet left the identity — and so the
clip cache key — unchanged, so a later run reused clips made in the other mode)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from mova_eval.config import compose
from mova_eval.errors import ConfigError
from mova_eval.generators.base import Capabilities, ModelGenerator, ModelSettings
from mova_eval.generators.mova import Mova360p
from mova_eval.generators.settings import output, runtime
from mova_eval.spec import GenRequest, SuiteItem


def test_ignore_first_frame_changes_the_mova_identity(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "ff.png")
    cfg = compose(["generator=mova_360p"])["generator"]
    it2va = Mova360p({**cfg, "ignore_first_frame": False})
    t2va = Mova360p({**cfg, "ignore_first_frame": True})
    req = GenRequest("a#s0", SuiteItem(id="a", category="set1", prompt="p", first_frame=str(tmp_path / "ff.png")), 0,
                     width=640, height=352, fps=24.0)
    assert (it2va.plan(req).mode, t2va.plan(req).mode) == ("it2va", "t2va")  # the setting changes what is made
    assert it2va.identity() != t2va.identity()


@dataclass(frozen=True)
class _ToySettings(ModelSettings):
    steps: int = output(10, "changes the clip")
    guidance: float = output(3.0)
    retries: int = runtime(2, "does not")
    mode_name: str = output("fast")


class _Toy(ModelGenerator):
    name = "toy_identity"
    Settings = _ToySettings
    capabilities = Capabilities()


def test_identity_follows_the_declared_roles():
    base = _Toy({"name": "toy_identity"}).identity()
    assert _Toy({"steps": 11}).identity() != base
    assert _Toy({"retries": 5}).identity() == base
    assert _Toy({"batch_size": 4, "label": "mine"}).identity() == base  # the shared runtime keys
    assert _Toy({"guidance": 3}).identity() == base  # an int for a float field is the same value
    assert base["adapter_version"] == "1" and base["settings"]["steps"] == 10 and "retries" not in base["settings"]


def test_unknown_and_mistyped_options_name_the_key_and_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown option generator\.stpes of generator 'toy_identity'; known keys: "
                                          r".*\bsteps\b"):
        _Toy({"stpes": 3})
    with pytest.raises(ConfigError, match=r"generator\.steps of generator 'toy_identity' must be int, got 'many'"):
        _Toy({"steps": "many"})
    with pytest.raises(ConfigError, match=r"generator\.steps .* must be int, got True"):
        _Toy({"steps": True})
    with pytest.raises(ConfigError, match=r"generator\.width .* must be int \| null, got 1.5"):
        _Toy({"width": 1.5})


def test_a_setting_without_a_role_or_an_identity_override_is_refused_at_class_definition():
    from dataclasses import field

    @dataclass(frozen=True)
    class Undeclared(ModelSettings):
        steps: int = field(default=3)

    with pytest.raises(TypeError, match="undeclared: \\['steps'\\]"):
        type("Bad", (ModelGenerator,), {"name": "bad", "Settings": Undeclared})
    with pytest.raises(TypeError, match="overrides identity"):
        type("Bad2", (ModelGenerator,), {"name": "bad2", "identity": lambda self: {}})


def test_model_settings_take_the_checkpoint_fingerprint_once_loaded(tmp_path):
    """A checkpoint is identified by its files, not its path: a moved folder keeps the identity, new files change
    it."""
    from mova_eval.generators.checkpoints import checkpoint_fingerprint

    a, b = tmp_path / "a", tmp_path / "b"
    for d, content in ((a, b"weights"), (b, b"weights")):
        d.mkdir()
        (d / "w.safetensors").write_bytes(content)
    cfg = compose(["generator=mova_360p"])["generator"]
    ga, gb = Mova360p({**cfg, "checkpoint": str(a)}), Mova360p({**cfg, "checkpoint": str(b)})
    assert ga.identity() != gb.identity()  # before load: the configured paths
    ga.record_fingerprint("checkpoint", a)
    gb.record_fingerprint("checkpoint", b)
    assert ga.identity() == gb.identity() and ga.identity()["models"]["checkpoint"] == checkpoint_fingerprint(a)
    (b / "w.safetensors").write_bytes(b"other weights")
    gc = Mova360p({**cfg, "checkpoint": str(b)})
    gc.record_fingerprint("checkpoint", b)
    assert gc.identity() != ga.identity()


def test_a_cascade_refuses_unknown_stage_options_under_their_own_prefix():
    from mova_eval.generators.cascade import Cascade

    with pytest.raises(ConfigError, match=r"unknown option generator\.video\.stepz of generator 'wan21'"):
        Cascade({"video": {"name": "wan21", "stepz": 3}, "audio": {"name": "audioldm2"}})
    with pytest.raises(ConfigError, match=r"unknown option generator\.audio\.num_steps of audio stage 'audioldm2'; "
                                          r"known keys: .*num_inference_steps"):
        Cascade({"video": {"name": "wan21"}, "audio": {"name": "audioldm2", "num_steps": 25}})
    with pytest.raises(ConfigError, match=r"generator\.audio\.cfg_strength of audio stage 'mmaudio' must be float"):
        Cascade({"video": {"name": "wan21"}, "audio": {"name": "mmaudio", "cfg_strength": "strong"}})
