"""Plug-ins named ``package.module:ClassName`` (mova_eval.registry, docs/plugins.md): from the configuration's
``plugins`` list and from entry points, with a PluginError (a ConfigError, exit status 2) that says what is wrong
for every kind of bad path."""
from __future__ import annotations

import sys
import textwrap

import pytest

from mova_eval import registry
from mova_eval.config import compose
from mova_eval.errors import ConfigError, PluginError

PLUGIN = '''
from dataclasses import dataclass

import numpy as np

from mova_eval.generators.base import Capabilities, ModelGenerator, ModelSettings
from mova_eval.generators.settings import output
from mova_eval.metrics.base import ItemScore, Metric, MetricInfo, Output


class PeakMetric(Metric):
    """The largest absolute sample of the soundtrack."""

    info = MetricInfo(name="peak_plugin", outputs=(Output("peak_abs", "none"),), needs=frozenset({"audio"}))

    def score(self, clip, item):
        return ItemScore({"peak_abs": float(np.max(np.abs(clip.audio)))})


class AbstractBase(Metric):
    __abstract__ = True


@dataclass(frozen=True)
class EchoSettings(ModelSettings):
    steps: int = output(4)


class Echo(ModelGenerator):
    name = "echo_cfg_plugin"
    Settings = EchoSettings
    capabilities = Capabilities()

    def _load(self):
        pass


def helper():
    return 1
'''

CLASH = '''
from mova_eval.metrics.base import ItemScore, Metric, MetricInfo, Output


class FakeLoudness(Metric):
    info = MetricInfo(name="loudness", outputs=(Output("lufs_fake"),))

    def score(self, clip, item):
        return ItemScore({"lufs_fake": 0.5})
'''


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    root = tmp_path / "site"
    (root / "cfg_plugin_pkg").mkdir(parents=True)
    (root / "cfg_plugin_pkg" / "__init__.py").write_text("")
    (root / "cfg_plugin_pkg" / "things.py").write_text(textwrap.dedent(PLUGIN))
    (root / "cfg_plugin_pkg" / "clash.py").write_text(textwrap.dedent(CLASH))
    (root / "cfg_plugin_pkg" / "broken.py").write_text("raise ValueError('the plug-in is broken')\n")
    monkeypatch.syspath_prepend(str(root))
    registry.forget_plugins()
    yield root
    registry.forget_plugins()
    for m in [m for m in sys.modules if m.split(".")[0] == "cfg_plugin_pkg"]:
        del sys.modules[m]


def test_a_config_plugin_metric_is_registered_and_scores_in_a_run(pkg, tmp_path):
    from mova_eval.runner import run

    cfg = compose(["plugins=[cfg_plugin_pkg.things:PeakMetric]", "metrics.only=[peak_plugin,loudness]",
                   f"output_dir={tmp_path}", "run_id=p", "suite.limit=2", "runtime.progress=false",
                   "runtime.bootstrap=0", f"runtime.cache_dir={tmp_path / 'cache'}"])
    cls = registry.get_metric_class("peak_plugin")
    assert registry.class_path(cls) == "cfg_plugin_pkg.things:PeakMetric"
    assert "loudness" in registry.metric_classes()  # the package's own metrics are still there
    out = run(cfg)
    rows = out.items[out.items["metric"] == "peak_abs"]
    assert len(rows) == 2 and rows["error"].isna().all()
    assert ((rows["value"] > 0) & (rows["value"] <= 1.0)).all()  # a real peak of decoded audio in (0, 1]


def test_a_config_plugin_generator_is_registered(pkg):
    registry.use_plugins(["cfg_plugin_pkg.things:Echo"])
    cls = registry.get_generator_class("echo_cfg_plugin")
    assert cls.__name__ == "Echo" and cls({"steps": 5}).identity()["settings"]["steps"] == 5
    assert "synthetic" in registry.generator_classes()


def test_validate_runs_a_config_plugin_generator_without_a_preset(pkg, capsys):
    """No preset file: ``~generator +generator.name=NAME`` replaces the default generator's settings."""
    from mova_eval.cli import main

    over = ["suite=smoke", "plugins=[cfg_plugin_pkg.things:Echo]", "~generator", "+generator.name=echo_cfg_plugin",
            "+generator.steps=6", "+generator.num_frames=8"]
    assert compose(over)["generator"] == {"name": "echo_cfg_plugin", "steps": 6, "num_frames": 8}
    assert main(["validate", *over]) == 0 and "no problems found" in capsys.readouterr().out
    assert main(["validate", *over, "+generator.stepz=6"]) == 2  # the plug-in's settings are checked
    assert "generator.stepz" in capsys.readouterr().err


def test_a_module_path_registers_every_class_it_defines(pkg):
    got = registry.use_plugins(["cfg_plugin_pkg.things"])
    assert {c.__name__ for c in got} == {"PeakMetric", "Echo"}  # not the abstract base, not the imported bases
    assert "peak_plugin" in registry.metric_classes() and "echo_cfg_plugin" in registry.generator_classes()


def test_without_the_plugin_it_is_unknown(pkg):
    from mova_eval.errors import RegistryKeyError

    with pytest.raises(RegistryKeyError, match="unknown metric 'peak_plugin'"):
        registry.get_metric_class("peak_plugin")


@pytest.mark.parametrize("path,message", [
    ("cfg_plugin_pkg.things:PeakMetric:x", r"is not of the form package\.module:ClassName"),
    ("cfg plugin:X", r"is not of the form package\.module:ClassName"),
    ("no_such_pkg_xyz.mod:Thing", r"cannot be imported: no module named 'no_such_pkg_xyz' \(is its package "
                                  r"installed"),
    ("cfg_plugin_pkg.missing:Thing", r"no module named 'cfg_plugin_pkg\.missing'"),
    ("cfg_plugin_pkg.broken:Thing", r"importing module 'cfg_plugin_pkg\.broken' raised ValueError: the plug-in is "
                                    r"broken"),
    ("cfg_plugin_pkg.things:PeakMetrc", r"names nothing: module 'cfg_plugin_pkg\.things' has no attribute "
                                        r"'PeakMetrc' \(its metric and generator classes: PeakMetric, Echo\)"),
    ("cfg_plugin_pkg.things:helper", r"is a function, not a subclass of mova_eval\.metrics\.base\.Metric"),
    ("cfg_plugin_pkg.things:dataclass", r"is a function, not a subclass"),
    ("cfg_plugin_pkg.things:EchoSettings", r"is the class EchoSettings, not a subclass"),
    ("cfg_plugin_pkg.things:AbstractBase", r"is an abstract base class"),
    ("cfg_plugin_pkg:Thing", r"names nothing: module 'cfg_plugin_pkg' has no attribute 'Thing' \(its metric and generator "
                              r"classes: none\)"),
    ("cfg_plugin_pkg", r"defines no concrete Metric or Generator class"),
])
def test_a_bad_path_is_a_plugin_error_naming_it_and_the_problem(pkg, path, message):
    with pytest.raises(PluginError, match=message) as e:
        compose([f"plugins=[{path!r}]"]) if " " not in path else registry.use_plugins([path])
    assert str(e.value).startswith("plugins[0]: ") and repr(path) in str(e.value)
    assert isinstance(e.value, ConfigError)
    assert "peak_plugin" not in registry.metric_classes()


def test_plugins_must_be_a_list(pkg):
    with pytest.raises(PluginError, match=r"must be a list"):
        compose(["plugins=cfg_plugin_pkg.things:PeakMetric"])


def test_a_plugin_taking_a_built_in_name_is_refused_and_not_registered(pkg):
    with pytest.raises(PluginError, match=r"is a metric named 'loudness', a name "
                                          r"mova_eval\.metrics\.loudness:LoudnessMetric .*already has"):
        registry.use_plugins(["cfg_plugin_pkg.clash:FakeLoudness"])
    assert registry.get_metric_class("loudness").__name__ == "LoudnessMetric"
    registry.use_plugins(["cfg_plugin_pkg.things:PeakMetric"])  # the registry still works afterwards
    assert "peak_plugin" in registry.metric_classes()


def test_the_cli_reports_a_bad_plugin_with_exit_status_2(pkg, capsys, tmp_path):
    from mova_eval.cli import main

    rc = main(["run", "plugins=[cfg_plugin_pkg.things:Nope]", f"output_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "plugins[0]: 'cfg_plugin_pkg.things:Nope' names nothing" in err
    assert not (tmp_path / "runs").exists()  # refused before any run folder was made


def test_ls_lists_a_config_plugin(pkg, capsys):
    from mova_eval.cli import main

    assert main(["ls", "plugins=[cfg_plugin_pkg.things:PeakMetric]"]) == 0
    assert "peak_plugin" in capsys.readouterr().out


def test_an_empty_plugins_list_keeps_old_config_hashes():
    from mova_eval.runner import config_hash

    cfg = compose([])
    assert cfg["plugins"] == []
    old = {k: v for k, v in cfg.items() if k != "plugins"}  # a run made before the key existed
    assert config_hash(cfg) == config_hash(old)
    assert config_hash({**cfg, "plugins": ["a.b:C"]}) != config_hash(cfg)


# ----------------------------------------------------------------------------------------------- entry points


def _dist(root, name, group, value):
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\nthing = {value}\n")


def test_an_entry_point_naming_a_class_registers_it(pkg):
    """An entry point's usual ``module:Class`` value; the old registry dropped the class (it compared the class's
    module with the class's own name)."""
    _dist(pkg, "peak-dist", "mova_eval.metrics", "cfg_plugin_pkg.things:PeakMetric")
    _dist(pkg, "echo-dist", "mova_eval.generators", "cfg_plugin_pkg.things:Echo")
    registry.forget_plugins()
    assert registry.get_metric_class("peak_plugin").__name__ == "PeakMetric"
    assert registry.get_generator_class("echo_cfg_plugin").__name__ == "Echo"


def test_a_broken_entry_point_names_the_distribution(pkg):
    _dist(pkg, "broken-dist", "mova_eval.metrics", "cfg_plugin_pkg.things:Gone")
    registry.forget_plugins()
    with pytest.raises(PluginError, match=r"entry point 'thing' of distribution 'broken-dist' \(group "
                                          r"mova_eval\.metrics\): 'cfg_plugin_pkg\.things:Gone' names nothing"):
        registry.metric_classes()
