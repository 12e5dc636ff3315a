"""A run killed with SIGKILL in the middle resumes by run id and ends with the same items as an uninterrupted run.

Compared: every item's values and errors. Clip bytes are not compared here: byte-identical synthetic clips are the
synthetic generator's own promise (tests/unit/test_synthetic.py); this test once caught frame-threaded x264 giving
different bytes for identical frames, which media.encode avoids with one encoder thread."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd

ARGS = ["metrics.only=[loudness]", "runtime.progress=false", "runtime.cache=false", "runtime.bootstrap=50",
        "generator.duration=6.0"]


def _run(out, run_id, env):
    return subprocess.Popen([sys.executable, "-m", "mova_eval", "run", f"output_dir={out}", f"run_id={run_id}", *ARGS],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_resume(tmp_path):
    env = {**os.environ, "MOVA_EVAL_CACHE": str(tmp_path / "cache")}
    partial = tmp_path / "runs" / "k" / "items.partial.jsonl"
    proc = _run(tmp_path / "runs", "k", env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if partial.is_file() and len(partial.read_text().splitlines()) >= 2:  # one line per finished item
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run finished before it could be killed: {proc.stderr.read()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(partial.read_text().splitlines())
    assert 2 <= done_before < 10

    resumed = _run(tmp_path / "runs", "k", env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    full = _run(tmp_path / "ref", "k", env)
    assert full.wait(timeout=300) == 0, full.stderr.read()

    a = pd.read_parquet(tmp_path / "runs" / "k" / "items.parquet")
    b = pd.read_parquet(tmp_path / "ref" / "k" / "items.parquet")
    cols = ["item_id", "metric", "value", "error"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not partial.exists()
