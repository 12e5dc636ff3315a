"""The interpreter a generator's worker runs in (``generator.python=/path/to/env/bin/python``), checked before
anything is launched, and the error a crashed worker leaves.

Why: some models cannot be installed into the harness's environment (MOVA needs Python >= 3.12 and
``transformers<5``), so their worker runs in the model's own environment and talks to the harness through
request and result files. Every way that set-up can be wrong becomes one clear :class:`InterpreterError` naming
``generator.python`` and the problem, never a traceback: the path does not exist, is not an executable file,
cannot be started, is the wrong Python version, or cannot import a package the worker needs. A worker that
crashes is reported by :func:`crash_message` with its exit code and the tail of its stderr.

The probe runs ``PYTHON -c <script>``: a few lines of standard library that print the interpreter's
``sys.executable``, its version and which of the asked modules ``importlib.util.find_spec`` cannot find (nothing
is imported, so probing a model's environment is fast and has no side effects).
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mova_eval.errors import GenerationError

PROBE = ("import importlib.util, json, sys\n"
         "mods = json.loads(sys.argv[1])\n"
         "print(json.dumps({'executable': sys.executable, 'version': list(sys.version_info[:3]),\n"
         "                  'missing': [m for m in mods if importlib.util.find_spec(m) is None]}))\n")


class InterpreterError(GenerationError):
    """``generator.python`` cannot run the worker; the message names the interpreter and the fix."""


@dataclass(frozen=True)
class Interpreter:
    path: str                          # as configured
    executable: str                    # its sys.executable
    version: tuple[int, int, int]


def tail(text: str | None, limit: int = 1500) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def probe(python: str, *, min_version: tuple[int, ...] | None = None, modules: tuple[str, ...] = (),
          needed_by: str = "the worker", install: str | None = None, timeout: float = 60.0) -> Interpreter:
    """Check that ``python`` exists, starts, is at least ``min_version`` and can find every module in ``modules``;
    InterpreterError otherwise (``needed_by`` and ``install`` go into the message)."""
    what = f"generator.python={python}"
    p = Path(python).expanduser()
    if not p.exists():
        raise InterpreterError(f"{what}: no such file (point it at the bin/python of the environment {needed_by} "
                               "is installed in)")
    if p.is_dir() or not os.access(p, os.X_OK):
        raise InterpreterError(f"{what}: not an executable file")
    try:
        r = subprocess.run([str(p), "-c", PROBE, json.dumps(list(modules))], capture_output=True, text=True,
                           timeout=timeout)
    except OSError as e:
        raise InterpreterError(f"{what}: cannot be started ({e.strerror or e})") from None
    except subprocess.TimeoutExpired:
        raise InterpreterError(f"{what}: did not answer a version probe within {timeout:.0f} s") from None
    if r.returncode:
        raise InterpreterError(f"{what}: exited with {r.returncode} when probed: {tail(r.stderr or r.stdout, 500)}")
    try:
        info = json.loads(r.stdout.strip().splitlines()[-1])
        version = tuple(int(v) for v in info["version"])
    except (IndexError, KeyError, ValueError, TypeError):
        raise InterpreterError(f"{what}: is not a Python interpreter (its answer to the probe was "
                               f"{tail(r.stdout, 200)!r})") from None
    if min_version and version[:len(min_version)] < tuple(min_version):
        need = ".".join(map(str, min_version))
        raise InterpreterError(f"{what}: is Python {'.'.join(map(str, version))}; {needed_by} needs Python >= {need}")
    if info.get("missing"):
        fix = f" (install into that environment: {install})" if install else ""
        raise InterpreterError(f"{what}: cannot import {', '.join(info['missing'])}, which {needed_by} needs{fix}")
    return Interpreter(str(python), str(info["executable"]), version)  # type: ignore[arg-type]


def crash_message(what: str, returncode: int, stderr: str | None, stdout: str | None = None) -> str:
    """A crashed worker's error: its exit code and the end of its stderr (stdout when stderr is empty)."""
    return f"{what} exited with {returncode}: {tail(stderr or stdout) or '(no output)'}"
