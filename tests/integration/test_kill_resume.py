"""A run killed abruptly in the middle resumes by run id and ends with the same items as an uninterrupted run.

The kill is deterministic: the child process runs the real CLI with ``ItemLog.append`` wrapped so that, right
after the 4th item is fsync'd, the process dies with ``os._exit`` (no cleanup, no finally blocks, no atexit: what
SIGKILL leaves behind) — no wall-clock polling, no race with where a signal lands.

Compared: every item's values and errors. Clip bytes are not compared here: byte-identical synthetic clips are the
synthetic generator's own promise (tests/unit/test_synthetic.py); this test once caught frame-threaded x264 giving
different bytes for identical frames, which media.encode avoids with one encoder thread."""
import os
import subprocess
import sys

import pandas as pd

ARGS = ["metrics.only=[loudness]", "runtime.progress=false", "runtime.cache=false", "runtime.bootstrap=50",
        "generator.duration=6.0"]
KILLED = 137

CHILD = """
import os, sys
from mova_eval import results
from mova_eval.cli import main
real, n = results.ItemLog.append, [0]
def append(self, rows):
    real(self, rows)
    n[0] += 1
    if n[0] == int(os.environ["DIE_AFTER_ITEMS"]):
        os._exit(137)
results.ItemLog.append = append
sys.exit(main(sys.argv[1:]))
"""


def _run(out, run_id, env, die_after=None):
    cmd = [sys.executable, "-m", "mova_eval"] if die_after is None else [sys.executable, "-c", CHILD]
    env = {**env, **({"DIE_AFTER_ITEMS": str(die_after)} if die_after else {})}
    return subprocess.run([*cmd, "run", f"output_dir={out}", f"run_id={run_id}", *ARGS], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)


def test_abrupt_kill_then_resume(tmp_path):
    env = {**os.environ, "MOVA_EVAL_CACHE": str(tmp_path / "cache")}
    partial = tmp_path / "runs" / "k" / "items.partial.jsonl"
    killed = _run(tmp_path / "runs", "k", env, die_after=4)
    assert killed.returncode == KILLED, killed.stderr
    assert len(partial.read_text().splitlines()) == 4  # one checksummed line per item, fsync'd before the kill
    assert not (tmp_path / "runs" / "k" / "items.parquet").exists()

    resumed = _run(tmp_path / "runs", "k", env)
    assert resumed.returncode == 0, resumed.stderr
    full = _run(tmp_path / "ref", "k", env)
    assert full.returncode == 0, full.stderr

    a = pd.read_parquet(tmp_path / "runs" / "k" / "items.parquet")
    b = pd.read_parquet(tmp_path / "ref" / "k" / "items.parquet")
    cols = ["item_id", "metric", "value", "error"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert len(a) == 20 and not partial.exists()
    import json

    log = json.loads((tmp_path / "runs" / "k" / "run.json").read_text())
    assert log["counts"]["resumed_rows"] == 8 and log["status"] == "complete"
