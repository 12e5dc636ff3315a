"""A third-party package registers a generator through the ``mova_eval.generators`` entry-point group
(docs/adding_a_generator.md, "Shipping an adapter in your own package"): an installed distribution, simulated here
by a ``*.dist-info`` folder on ``sys.path``, whose entry point names a module holding the adapter class."""
from __future__ import annotations

import sys
import textwrap

import pytest

from mova_eval.registry import generator_classes, get_generator_class

PLUGIN = '''
from dataclasses import dataclass

from mova_eval.generators.base import Capabilities, ModelGenerator, ModelSettings
from mova_eval.generators.settings import output, runtime


@dataclass(frozen=True)
class EchoSettings(ModelSettings):
    steps: int = output(4)
    retries: int = runtime(1)


class Echo(ModelGenerator):
    name = "echo_plugin"
    Settings = EchoSettings
    capabilities = Capabilities()

    def _load(self):
        pass
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    pkg = tmp_path / "echo_plugin_pkg"
    (pkg / "conf" / "generator").mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    (pkg / "conf" / "__init__.py").write_text("")
    (pkg / "conf" / "generator" / "echo_plugin.yaml").write_text("name: echo_plugin\nsteps: 6\nnum_frames: 8\n")
    dist = tmp_path / "echo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mova_eval.generators]\necho = echo_plugin_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    generator_classes.cache_clear()
    yield
    generator_classes.cache_clear()
    for m in [m for m in sys.modules if m.split(".")[0] == "echo_plugin_pkg"]:
        del sys.modules[m]


def test_a_generator_registers_through_its_entry_point(plugin):
    cls = get_generator_class("echo_plugin")
    assert cls.__module__ == "echo_plugin_pkg" and "synthetic" in generator_classes()
    gen = cls({"name": "echo_plugin", "steps": 5})
    assert gen.identity()["settings"]["steps"] == 5 and cls({"retries": 3}).identity() == cls({}).identity()


def test_its_preset_is_found_through_the_hydra_search_path(plugin, capsys):
    """The package ships conf/generator/<name>.yaml; `hydra.searchpath=[pkg://PKG.conf]` makes it a preset."""
    from mova_eval.cli import main
    from mova_eval.config import compose

    over = ["hydra.searchpath=[pkg://echo_plugin_pkg.conf]", "generator=echo_plugin"]
    assert compose(over)["generator"] == {"name": "echo_plugin", "steps": 6, "num_frames": 8}
    assert main(["validate", "suite=smoke", *over]) == 0 and "no problems found" in capsys.readouterr().out


def test_without_the_distribution_it_is_unknown():
    from mova_eval.errors import RegistryKeyError

    generator_classes.cache_clear()
    with pytest.raises(RegistryKeyError, match="unknown generator 'echo_plugin'"):
        get_generator_class("echo_plugin")
