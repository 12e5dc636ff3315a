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


def test_no_package_module_writes_os_environ_in_generators_or_arena_either():
    import mova_eval.arena
    import mova_eval.generators

    roots = [Path(mova_eval.generators.__file__).parent, Path(mova_eval.arena.__file__).parent]
    files = [p for root in roots for p in sorted(root.rglob("*.py"))]
    assert any(p.name == "_mova_worker.py" for p in files) and len(files) > 20
    assert [str(p) for p in files if _writes_os_environ(ast.parse(p.read_text()))] == []


def test_checkpoint_download_follows_the_context_offline_flag_not_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    import huggingface_hub

    from mova_eval.generators.checkpoints import resolve_checkpoint

    asked: list[bool] = []

    def fake_download(repo, local_files_only=False, **kw):
        asked.append(local_files_only)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the environment says online; the run says offline
    assert resolve_checkpoint("org/model", "X", "fetch it", offline=True) == tmp_path
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_checkpoint("org/model", "X", "fetch it", offline=False) == tmp_path
    assert asked == [True, False]


def test_generators_get_the_run_context_and_hand_it_to_their_stages(tmp_path):
    from mova_eval.registry import get_generator_class

    ctx = RunContext(cache_root=tmp_path / "c", offline=False)
    synth = get_generator_class("synthetic")({"name": "synthetic"}, device="cpu", context=ctx)
    assert synth.context is ctx
    assert get_generator_class("synthetic")({"name": "synthetic"}).context.cache_root != ctx.cache_root
    cascade = get_generator_class("cascade")(
        {"name": "cascade", "video": {"name": "synthetic"}, "audio": {"name": "audioldm2"}}, context=ctx)
    assert cascade.context is ctx and cascade.video.context is ctx and cascade.stage.context is ctx


def test_the_in_process_mova_process_group_leaves_the_environment_alone():
    """MOVA's one-GPU path creates its process group inside the harness: it must not set MASTER_ADDR/RANK/...
    (they would leak into every later subprocess, torchrun workers included)."""
    pytest.importorskip("torch")
    import json
    import os
    import subprocess
    import sys

    code = ("import json, os; before = dict(os.environ)\n"
            "from mova_eval.generators._mova_worker import init_distributed\n"
            "r = init_distributed()\n"
            "import torch.distributed as dist; dist.destroy_process_group()\n"
            "print(json.dumps({'rank': list(r), 'added': sorted(set(os.environ) - set(before)),"
            " 'changed': sorted(k for k in before if os.environ.get(k) != before[k])}))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got == {"rank": [0, 1], "added": [], "changed": []}


def test_every_registered_metric_is_built_with_the_runs_context(tmp_path):
    """select_metrics builds every metric as ``cls(options, device, context=...)``: a subclass whose ``__init__``
    drops the keyword crashes the whole run with a TypeError (clap_mova did), and one that swallows it finds its
    weights in the environment's folders instead of the run's."""
    from mova_eval.registry import metric_classes

    ctx = RunContext(cache_root=tmp_path / "cache", weights_dirs=(tmp_path / "w",))
    for name, cls in sorted(metric_classes().items()):
        m = cls(None, "cpu", context=ctx)
        assert m.context is ctx, f"{name} does not keep the run's context"
