"""Finding, fingerprinting and importing what a model adapter loads: checkpoint folders (local or a Hugging Face
id in the local cache), optional packages (the error names the install command), and injected factories.

``checkpoint_fingerprint`` is what a :func:`~mova_eval.generators.settings.model` setting contributes to a
generator's identity once ``load()`` has seen the files (``ModelGenerator.record_fingerprint``).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from mova_eval.errors import ConfigError, MissingDependencyError, MovaEvalError
from mova_eval.metrics.base import Availability

_FP_CACHE: dict[tuple, str] = {}


class CheckpointMissingError(MovaEvalError):
    """A model checkpoint (folder or Hugging Face id) is not available here; the message has the download command."""


def checkpoint_fingerprint(path: str | Path) -> str:
    """sha256 over every file's relative path, size and first/last MiB (hashing 100+ GB of shards in full on every
    run is not practical). A file is the same when these match; `mova-eval weights verify` does full hashes."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and ".cache" not in f.parts)
    stats = [f.stat() for f in files]
    # memoised per process on every file's size and mtime (a folder's own mtime misses files rewritten in place)
    key = (str(p.resolve()), tuple((str(f), st.st_size, st.st_mtime_ns) for f, st in zip(files, stats)))
    if key in _FP_CACHE:
        return _FP_CACHE[key]
    h = hashlib.sha256()
    for f, st in zip(files, stats):
        size = st.st_size
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    digest = "fp-" + h.hexdigest()[:32]
    _FP_CACHE[key] = digest
    return digest


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_checkpoint(ref: str | None, what: str, fetch_hint: str, *, offline: bool) -> Path:
    """A local folder/file, or a Hugging Face repo id found in the local HF cache (downloaded only when the run is
    online: ``offline`` is the run context's flag, ``runtime.offline`` / ``$HF_HUB_OFFLINE``). CheckpointMissingError
    with the download command otherwise."""
    if not ref:
        raise ConfigError(f"{what}: set generator.checkpoint=PATH (or a Hugging Face id)")
    p = Path(str(ref)).expanduser()
    if p.exists():
        return p
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(ref)):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(str(ref), local_files_only=offline))
        except Exception as e:  # offline, gated, missing
            raise CheckpointMissingError(f"{what}: checkpoint {ref!r} is not on disk and could not be fetched "
                                         f"({type(e).__name__}). Download it with: {fetch_hint} and pass "
                                         f"generator.checkpoint=PATH") from e
    raise CheckpointMissingError(f"{what}: checkpoint path {ref} does not exist. Download it with: {fetch_hint}")


def weights_ready(ref: str | None, fetch_hint: str) -> Availability:
    """Readiness for `mova-eval ls`: a local path, or a Hugging Face id already in the local cache. Nothing is
    downloaded here (a run fetches a missing Hugging Face id only when online)."""
    if not ref:
        return Availability(False, "no checkpoint configured (generator.checkpoint=PATH)")
    if Path(str(ref)).expanduser().exists():
        return Availability(True)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(ref)):
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(str(ref), local_files_only=True)
            return Availability(True)
        except Exception:  # noqa: BLE001 — not cached (or hub library missing)
            return Availability(False, f"weights {ref} are not downloaded (a run fetches them when online)", fetch_hint)
    return Availability(False, f"checkpoint path {ref} does not exist", fetch_hint)


def require(module: str, what: str, command: str):
    """Import ``module`` or raise MissingDependencyError carrying the exact install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(what, module.split(".")[0], command=command) from e


def call_factory(spec: str, *args, **kw):
    """``"pkg.module:attr.attr"`` → call it (used to inject a pipeline, e.g. a tiny stand-in in tests)."""
    import importlib

    mod, _, attr = spec.partition(":")
    obj = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj(*args, **kw)
