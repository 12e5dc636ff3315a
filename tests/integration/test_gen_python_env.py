"""``generator.python``: the worker's interpreter is checked before anything launches, each problem is one clear
error naming it (never a traceback), and the setting does not change the generator's identity. A second venv is
made in the test (``python -m venv --without-pip``: no network) with a stand-in ``mova`` package in it."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mova_eval.config import compose
from mova_eval.generators.interpreter import InterpreterError, crash_message, probe
from mova_eval.generators.mova import Mova360p


@pytest.fixture(scope="module")
def second_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
    py = root / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "mova").mkdir()
    (site / "mova" / "__init__.py").write_text("STAND_IN = True\n")
    return py


def _cfg(**over):
    cfg = compose(["generator=mova_360p"])["generator"]
    cfg.update(over)
    return cfg


def test_probe_reports_the_second_interpreter_and_what_it_cannot_import(second_env):
    info = probe(str(second_env), min_version=(3, 8), modules=("mova", "json"))
    assert info.executable == str(second_env) != sys.executable  # the venv's own interpreter answered
    assert info.version[:2] == sys.version_info[:2]
    with pytest.raises(InterpreterError, match=r"generator\.python=.*cannot import torch, which the worker needs "
                                               r"\(install into that environment: pip install torch\)"):
        probe(str(second_env), modules=("mova", "torch"), install="pip install torch")


def test_each_broken_interpreter_is_one_clear_error(tmp_path, second_env):
    with pytest.raises(InterpreterError, match="no such file"):
        probe(str(tmp_path / "nope" / "python"))
    plain = tmp_path / "python"
    plain.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(InterpreterError, match="not an executable file"):
        probe(str(plain))
    plain.chmod(plain.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(InterpreterError, match="is not a Python interpreter"):
        probe(str(plain))
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'boom: no libpython' >&2\nexit 7\n")
    failing.chmod(0o755)
    with pytest.raises(InterpreterError, match="exited with 7 when probed: boom: no libpython"):
        probe(str(failing))
    v = sys.version_info
    with pytest.raises(InterpreterError, match=rf"is Python {v.major}\.{v.minor}\.{v.micro}; the worker needs "
                                               rf"Python >= {v.major}\.{v.minor + 1}"):
        probe(str(second_env), min_version=(v.major, v.minor + 1))


def test_crash_message_has_exit_code_and_stderr_tail():
    msg = crash_message("the worker", 3, "x" * 5000 + "CUDA out of memory")
    assert msg.startswith("the worker exited with 3: …") and msg.endswith("CUDA out of memory") and len(msg) < 1600


def test_mova_with_generator_python_checks_that_env_not_this_one(second_env):
    """The harness has no ``mova``; with generator.python the package is looked for in the second env. MOVA's
    real pipeline needs Python >= 3.12, so a 3.11 env is refused by version; every request carries the reason."""
    here = Mova360p.availability(_cfg())
    assert not here.ok and "'mova' is not installed" in here.reason
    av = Mova360p.availability(_cfg(python=str(second_env), checkpoint=str(second_env.parent)))
    if sys.version_info < (3, 12):
        assert not av.ok and "needs Python >= 3.12" in av.reason
    else:
        assert not av.ok and "cannot import torch" in av.reason  # the stand-in env has no torch
    gen = Mova360p(_cfg(python=str(second_env), checkpoint=str(second_env.parent)))
    gen.load()
    from mova_eval.spec import GenRequest, SuiteItem

    item = SuiteItem(id="a", category="set3", prompt="p")
    (res,) = gen.generate([GenRequest("a#s0", item, 0, width=640, height=352, fps=24.0)])
    assert res.path is None and "generator.python=" in res.error and "Traceback" not in res.error
    missing = Mova360p.availability(_cfg(python="/no/such/python"))
    assert not missing.ok and "no such file" in missing.reason


def test_generator_python_is_a_runtime_setting_not_part_of_the_identity(second_env):
    a = Mova360p(_cfg()).identity()
    b = Mova360p(_cfg(python=str(second_env))).identity()
    assert a == b and "python" not in json.dumps(a["settings"])
    assert os.fspath(second_env) not in json.dumps(b)


@pytest.mark.slow
def test_a_clip_made_by_the_worker_in_the_second_interpreter(tmp_path, monkeypatch):
    """End to end: MOVA's worker runs under a second venv's python and writes the clip; the result records that
    interpreter. That venv borrows torch/numpy/av/mova_eval from the harness's environment through a .pth line
    (no network to install them) and holds the stand-in ``mova`` package, which the harness itself cannot import.
    The stand-in is named by pipeline_factory, which skips the Python >= 3.12 check (this venv is the harness's
    Python); the real-MOVA version refusal is checked above."""
    import sysconfig

    from mova_eval import media
    from mova_eval.spec import GenRequest, SuiteItem

    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    py = env / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "harness.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    pkg = site / "mova" / "diffusion" / "pipelines"
    pkg.mkdir(parents=True)
    for d in (site / "mova", site / "mova" / "diffusion", pkg):
        (d / "__init__.py").write_text("")
    tiny = (Path(__file__).parent / "tiny_mova.py").read_text()
    (pkg / "pipeline_mova.py").write_text(tiny + "\n\nMOVA = TinyMova\n")
    meta = site / "mova-0.0.1+standin.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: mova\nVersion: 0.0.1+standin\n")
    assert importlib_spec("mova") is None  # the harness has no mova

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = _cfg(python=str(py), checkpoint=str(tmp_path), num_frames=9, worker_timeout_s=240,
               pipeline_factory="mova.diffusion.pipelines.pipeline_mova:MOVA.from_pretrained")
    assert Mova360p.availability(cfg).ok
    gen = Mova360p(cfg)
    gen.load()
    item = SuiteItem(id="a", category="set3", prompt="A man says hi.")
    (res,) = gen.generate([GenRequest("a#s0", item, 0, width=640, height=352, fps=24.0,
                                      out_path=str(tmp_path / "a.mp4"))])
    assert res.ok, res.error
    assert res.provenance["python"] == str(py) != sys.executable
    assert res.provenance["package_version"] == "0.0.1+standin"  # read in that environment, not in the harness
    assert media.decode(res.path).video.shape == (9, 352, 640, 3)


def importlib_spec(name):
    import importlib.util

    return importlib.util.find_spec(name)
