"""Bad values and hostile storage end in one clear line naming the key or folder, exit 2, and no run folder left
"running" (issue 15 item 7). Each case went through `mova-eval run` as a user types it; before the fix each was a
traceback, or (fail_on_error) failed only after the whole run."""
from __future__ import annotations

import errno
import os

import pytest

from mova_eval.cli import main

BASE = ["metrics.only=[loudness]", "suite.limit=2", "runtime.progress=false", "runtime.bootstrap=10"]


def _run(capsys, tmp_path, *overrides) -> tuple[int, str]:
    rc = main(["run", f"output_dir={tmp_path / 'runs'}", "run_id=x", *BASE, *overrides])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("override, says", [
    ("runtime.workers=abc", "runtime.workers='abc' is not a whole number"),
    ("runtime.workers=0", "runtime.workers=0 must be at least 1"),
    ("runtime.bootstrap=-5", "runtime.bootstrap=-5 must be at least 0"),
    ("runtime.fail_on_error=abc", "runtime.fail_on_error='abc' is not a number"),
    ("runtime.fail_on_error=1.5", "runtime.fail_on_error=1.5 is outside [0, 1]"),
    ("runtime.cache=maybe", "runtime.cache='maybe' is not a boolean"),
    ("seeds=[a]", "seeds=['a']: 'a' is not a whole number"),
    ("seeds=[1,1]", "repeats a seed"),
    ("suite.limit=-1", "suite.limit=-1 must be a whole number"),
])
def test_a_bad_value_is_refused_before_anything_runs(capsys, tmp_path, override, says):
    rc, err = _run(capsys, tmp_path, override)
    assert rc == 2, err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "x").exists()  # refused before the run folder was made


def test_one_seed_without_brackets_is_accepted(capsys, tmp_path):
    rc, err = _run(capsys, tmp_path, "seeds=5")
    assert rc == 0, err


def test_a_binary_suite_file_is_a_suite_error_naming_it(capsys, tmp_path):
    bad = tmp_path / "suite.json"
    bad.write_bytes(os.urandom(64) + b"\xff\xfe")
    rc, err = _run(capsys, tmp_path, f"suite.path={bad}")
    assert rc == 2 and str(bad) in err and "not UTF-8" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the full-disk test covers the path")
def test_a_read_only_output_folder_names_it(capsys, tmp_path):
    ro = tmp_path / "runs"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc, err = _run(capsys, tmp_path)
    finally:
        ro.chmod(0o700)
    assert rc == 2 and "is not writable" in err and str(ro) in err


def test_a_full_disk_names_the_folder_and_the_bytes_needed(capsys, tmp_path, monkeypatch):
    import mova_eval.cache as cache

    real = os.fdopen

    def full(fd, *a, **kw):  # the device fills up on the first atomic write (run.json)
        f = real(fd, *a, **kw)

        class Full:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, data):
                raise OSError(errno.ENOSPC, "No space left on device")

        return Full()

    monkeypatch.setattr(cache.os, "fdopen", full)
    rc, err = _run(capsys, tmp_path)
    assert rc == 2, err
    assert "no space left on the device writing run.json" in err and "bytes needed" in err and "bytes free" in err
    assert str(tmp_path / "runs" / "x") in err
    assert not list((tmp_path / "runs" / "x").glob(".run.json.*.tmp"))  # no temp file left behind
