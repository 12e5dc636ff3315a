"""Content-addressed cache of generated clips, features and per-item scores.

Key = sha256 of (clip content hash, extractor/metric id, its cache token: version + options + weights sha256,
preset, item fingerprint). One root, the run context's ``cache_root`` (:class:`mova_eval.context.RunContext`; ``$MOVA_EVAL_CACHE``, else the user
cache dir, when no context is given). Inputs are never modified.
Writes are atomic (temp file + rename), so concurrent workers and killed runs never leave a torn entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

from mova_eval.context import RunContext, default_cache_root


def cache_root(context: RunContext | None = None) -> Path:
    """The context's cache root; without one, the environment's default (read, never written)."""
    return context.cache_root if context is not None else default_cache_root()


def make_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a unique temp file + rename. A read-only folder or a full disk is a
    :class:`~mova_eval.errors.StorageError` naming the folder (and the bytes needed), never a bare OSError."""
    from mova_eval.errors import storage_error

    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise storage_error(path, e, needed=len(data)) from e
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class Cache:
    """A namespace under the cache root (``features``, ``scores``, ``clips``…) holding pickled values."""

    def __init__(self, namespace: str, root: Path | None = None, enabled: bool = True, *,
                 context: RunContext | None = None):
        self.dir = (root or cache_root(context)) / namespace
        self.enabled = enabled

    def path(self, key: str, suffix: str = ".pkl") -> Path:
        return self.dir / key[:2] / f"{key}{suffix}"

    def get(self, key: str, default: Any = None, *, expect: type | tuple[type, ...] | None = None) -> Any:
        """The cached value, or ``default`` on a miss. Any entry that cannot be read back — torn, random bytes,
        written by another version, or (with ``expect``) of the wrong type — is removed and counts as a miss, so it
        is recomputed rather than trusted or allowed to crash the run."""
        if not self.enabled:
            return default
        p = self.path(key)
        try:
            with open(p, "rb") as f:
                value = pickle.load(f)
        except FileNotFoundError:
            return default
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception:  # unpickling garbage can raise almost anything (ValueError, TypeError, KeyError, …)
            p.unlink(missing_ok=True)
            return default
        if expect is not None and not isinstance(value, expect):
            p.unlink(missing_ok=True)
            return default
        return value

    def put(self, key: str, value: Any) -> None:
        if self.enabled:
            atomic_write_bytes(self.path(key), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def get_or_compute(self, key: str, compute: Callable[[], Any], *,
                       expect: type | tuple[type, ...] | None = None) -> Any:
        sentinel = object()
        hit = self.get(key, sentinel, expect=expect)
        if hit is not sentinel:
            return hit
        value = compute()
        self.put(key, value)
        return value
