"""The run context (issue 11 point 4): built once from the config with the environment as defaults, passed down
explicitly, and never written into os.environ."""
import ast
import dataclasses
import math
from pathlib import Path

import pytest

from mova_eval import weights
from mova_eval.cache import Cache
from mova_eval.config import compose
from mova_eval.context import RunContext
from mova_eval.errors import WeightsMissingError
from mova_eval.runner import run

BASE = ["metrics.only=[loudness]", "runtime.progress=false", "runtime.bootstrap=0", "suite.limit=2",
        "runtime.device=cpu"]


def test_config_overrides_the_environment_defaults(tmp_path):
    env = {"MOVA_EVAL_CACHE": str(tmp_path / "env-cache"), "MOVA_EVAL_WEIGHTS": f"{tmp_path / 'a'}:{tmp_path / 'b'}",
           "HF_HUB_OFFLINE": "1"}
    from_env = RunContext.from_env(env)
    assert from_env.cache_root == tmp_path / "env-cache" and from_env.offline
    assert from_env.weights_dirs == (tmp_path / "a", tmp_path / "b")
    assert from_env.weights_search_dirs()[-1] == tmp_path / "env-cache" / "weights"
    ctx = RunContext.from_config({"cache_dir": str(tmp_path / "cfg-cache"), "offline": False}, env, device="cuda:1")
    assert ctx.cache_root == tmp_path / "cfg-cache" and ctx.weights_dir == tmp_path / "cfg-cache" / "weights"
    assert ctx.weights_dirs == from_env.weights_dirs and ctx.device == "cuda:1" and not ctx.offline
    assert not RunContext.from_env({"HF_HUB_OFFLINE": "0", "MOVA_EVAL_CACHE": "x"}).offline
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.device = "cpu"  # type: ignore[misc]


def test_a_run_writes_nothing_into_os_environ_and_uses_its_own_cache_root(tmp_path, monkeypatch):
    import os

    env_cache = tmp_path / "env-cache"
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(env_cache))
    before = dict(os.environ)
    out = run(compose([f"output_dir={tmp_path / 'runs'}", "run_id=r", *BASE,
                       f"+runtime.cache_dir={tmp_path / 'run-cache'}"]))
    assert dict(os.environ) == before
    assert out.log.status == "complete" and out.items["value"].notna().all()
    assert list((tmp_path / "run-cache" / "scores").rglob("*.pkl")), "the run's scores are under runtime.cache_dir"
    assert not env_cache.exists(), "nothing went to the environment's cache root"


def test_weights_are_found_through_the_context_not_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("MOVA_EVAL_CACHE", str(tmp_path / "env-cache"))
    spec = weights.get("imagebind_huge")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / spec.filename).write_bytes(b"stand-in")
    ctx = RunContext(cache_root=tmp_path / "ctx-cache", weights_dirs=(mine,))
    assert weights.resolve("imagebind_huge", ctx) == mine / spec.filename
    with pytest.raises(WeightsMissingError):
        weights.resolve("imagebind_huge")  # the environment's folders do not have it
    from mova_eval.metrics.ib_score import IBScoreMetric

    assert IBScoreMetric.availability(ctx).ok and not IBScoreMetric.availability().ok
    assert IBScoreMetric(None, context=ctx).context is ctx
    assert Cache("features", context=ctx).dir == tmp_path / "ctx-cache" / "features"


def test_an_error_row_is_named_after_the_outputs_its_options_ask_for(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path / "empty"))
    out = run(compose([f"output_dir={tmp_path / 'runs'}", "run_id=ib", "metrics.only=[ib_score]",
                       "+metrics.options.ib_score.scale=100", "runtime.progress=false", "runtime.bootstrap=0",
                       "suite.limit=2", "runtime.device=cpu", f"+runtime.cache_dir={tmp_path / 'c'}"]))
    from mova_eval.metrics.ib_score import IBScoreMetric

    names = set(out.items["metric"])
    assert "ib_score_x100" in names and "ib_score" not in names, names
    assert names == {o.name for o in IBScoreMetric({"scale": 100}).requested_outputs()}
    assert out.items["value"].map(math.isnan).all() and out.items["error"].str.contains("MetricUnavailable").all()


def _writes_os_environ(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            if isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ":
                return True
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.setdefault", "os.environ.update",
                                                                     "os.putenv"):
            return True
    return False


def test_no_package_module_writes_os_environ():
    assert _writes_os_environ(ast.parse('import os\nos.environ["MOVA_EVAL_CACHE"] = "x"'))  # the check can fail
    import mova_eval.metrics

    roots = [Path(mova_eval.__file__).parent, Path(mova_eval.metrics.__file__).parent]
    files = [p for root in roots for p in sorted(root.rglob("*.py"))]
    assert len(files) > 40
    assert [str(p) for p in files if _writes_os_environ(ast.parse(p.read_text()))] == []
