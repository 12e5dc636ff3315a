"""The checkpoint registry: every model file a metric or generator loads, where it comes from, and its sha256.

Nothing downloads during a run. Files are found in the run context's ``weights_dirs`` (``$MOVA_EVAL_WEIGHTS`` by
default: folders of files users already have) or in the cache root's ``weights/`` folder, where
``mova-eval weights fetch NAME`` puts them (resumable, checked).
Each entry carries the digests its publisher gives, each with where it is published (never a digest computed
here and passed off as published):

- ``sha256`` + ``sha256_source``: the full sha256 (a Hugging Face LFS pointer, OpenAI's download path);
- ``sha256_prefix`` + ``sha256_prefix_source``: the leading hex digits of the sha256 that torch hub's naming convention
  puts in a file name (``vggish-10086976.pth``: ``torch.hub.load_state_dict_from_url(check_hash=True)`` compares
  the name's ``-HASH.`` part with the start of the file's sha256);
- ``md5`` + ``md5_source``: where the publisher gives only an md5 (MMAudio's release files).

A fetch, ``weights verify`` and the runner's pre-load check compare a file with every digest its entry carries and
refuse it on any difference, naming the file, the digest expected and the one found. Where no full sha256 is
published, the first fetch records the sha256 it saw in ``weights/pins.json`` (after the prefix or md5 matched, where
there is one) and later checks compare against it: trust on first use, which ``weights list`` states per entry.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mova_eval.context import RunContext
from mova_eval.errors import RegistryKeyError, WeightsChecksumError, WeightsMissingError


@dataclass(frozen=True)
class WeightSpec:
    name: str
    filename: str
    urls: tuple[str, ...]
    license: str
    used_by: tuple[str, ...]
    sha256: str | None = None  # the publisher's full sha256, where one is published
    size: int | None = None  # bytes, when known
    description: str = ""
    extra_files: tuple[str, ...] = field(default_factory=tuple)  # companions that must sit beside it
    non_commercial: bool = False  # the licence forbids commercial use (shown by `ls`/`weights list`, kept in run.json)
    md5: str | None = None  # the publisher's md5, where that is the only digest published
    md5_source: str | None = ""  # where that md5 is published (repository, file), required with md5
    sha256_source: str | None = ""  # where the pinned sha256 is published, required with sha256
    sha256_prefix: str | None = None  # leading hex digits of the sha256 a publisher gives (torch hub file names)
    sha256_prefix_source: str | None = ""  # where that prefix is published, required with sha256_prefix

    def __post_init__(self) -> None:
        _check_hex(self.name, "sha256", self.sha256, (64,), self.sha256_source)
        _check_hex(self.name, "sha256_prefix", self.sha256_prefix, range(8, 64), self.sha256_prefix_source)
        _check_hex(self.name, "md5", self.md5, (32,), self.md5_source)
        if self.sha256 and self.sha256_prefix and not self.sha256.startswith(self.sha256_prefix):
            raise ValueError(f"weights {self.name!r}: sha256 {self.sha256} does not start with its sha256_prefix "
                             f"{self.sha256_prefix}")

    def pins(self) -> tuple[Pin, ...]:
        """The published digests a file of this entry must match, strongest first."""
        out: list[Pin] = []
        if self.sha256:
            out.append(Pin("sha256", self.sha256, self.sha256_source or ""))
        if self.sha256_prefix:
            out.append(Pin("sha256 prefix", self.sha256_prefix, self.sha256_prefix_source or ""))
        if self.md5:
            out.append(Pin("md5", self.md5, self.md5_source or ""))
        return tuple(out)


@dataclass(frozen=True)
class Pin:
    """One published digest of a weights file: its kind, value and where the publisher gives it."""

    kind: Literal["sha256", "sha256 prefix", "md5"]
    value: str
    source: str

    def matches(self, sha256: str, md5: str) -> bool:
        if self.kind == "md5":
            return md5 == self.value
        if self.kind == "sha256 prefix":
            return sha256.startswith(self.value)
        return sha256 == self.value

    def actual(self, sha256: str, md5: str) -> str:
        """The file's digest in this pin's terms (the prefix's length of its sha256 for a prefix)."""
        return md5 if self.kind == "md5" else sha256[: len(self.value)] if self.kind == "sha256 prefix" else sha256

    def mismatch(self, path: Path | str, sha256: str, md5: str) -> str:
        return (f"{path} has {self.kind} {self.actual(sha256, md5)}, expected the publisher's {self.value} "
                f"({self.source})")


def _check_hex(name: str, what: str, value: str | None, lengths: Sequence[int], source: str | None) -> None:
    if value is None:
        return
    if len(value) not in lengths or not all(c in "0123456789abcdef" for c in value):
        want = f"{lengths[0]}" if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}"
        raise ValueError(f"weights {name!r}: {what} must be {want} lowercase hex digits, got {value!r}")
    if not source:
        raise ValueError(f"weights {name!r}: a {what} needs {what}_source (where the publisher gives it)")


_REGISTRY: dict[str, WeightSpec] = {}


def register(spec: WeightSpec) -> WeightSpec:
    """Called at import time by the metric/generator module that loads the file."""
    old = _REGISTRY.get(spec.name)
    if old is not None and old != spec:
        raise RuntimeError(f"weights {spec.name!r} registered twice with different specs")
    _REGISTRY[spec.name] = spec
    return spec


def registry() -> dict[str, WeightSpec]:
    """Every registered checkpoint. Importing the metric, feature-extractor and generator modules registers them."""
    from mova_eval import registry as reg

    reg.metric_classes()
    reg.generator_classes()
    reg.import_feature_modules()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> WeightSpec:
    if name not in _REGISTRY:
        registry()
    if name not in _REGISTRY:
        raise RegistryKeyError("weights", name, list(_REGISTRY))
    return _REGISTRY[name]


def _ctx(context: RunContext | None) -> RunContext:
    """The given context, or (for callers outside a run) the one the environment describes."""
    return context if context is not None else RunContext.from_env()


def weights_dir(context: RunContext | None = None) -> Path:
    return _ctx(context).weights_dir


def search_paths(spec: WeightSpec, context: RunContext | None = None) -> list[Path]:
    return [d / spec.filename for d in _ctx(context).weights_search_dirs()]


def resolve(name: str, context: RunContext | None = None) -> Path:
    """Path of a present checkpoint, or WeightsMissingError with the fetch command."""
    spec = get(name)
    searched = search_paths(spec, context)
    for p in searched:
        if p.is_file():
            return p
    raise WeightsMissingError(name, searched)


def sha256_of(path: Path) -> str:
    return _digests(path)[0]


def md5_of(path: Path) -> str:
    return _digests(path)[1]


def _digests(path: Path) -> tuple[str, str]:
    """(sha256, md5) of a file in one read."""
    h, m = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            m.update(block)
    return h.hexdigest(), m.hexdigest()


def _pins_path(context: RunContext | None = None) -> Path:
    return weights_dir(context) / "pins.json"


def local_pins(context: RunContext | None = None) -> dict[str, str]:
    p = _pins_path(context)
    return json.loads(p.read_text()) if p.is_file() else {}


def expected_sha256(name: str, context: RunContext | None = None) -> str | None:
    """The full sha256 a file must have: the published one, else the one this machine's first fetch recorded."""
    spec = get(name)
    return spec.sha256 or local_pins(context).get(name)


def _problem(name: str, path: Path, sha: str, md5: str, context: RunContext | None = None) -> str | None:
    """Why a file cannot be trusted: it differs from a published digest or from the first-fetch sha256, or None."""
    spec = get(name)
    for pin in spec.pins():
        if not pin.matches(sha, md5):
            return pin.mismatch(path, sha, md5)
    recorded = local_pins(context).get(name) if not spec.sha256 else None
    if recorded is not None and sha != recorded:
        return f"{path} has sha256 {sha}, expected {recorded} (recorded by this machine's first fetch)"
    return None


_FINGERPRINTS: dict[tuple[str, float, int], tuple[str, str]] = {}


def _present_digests(name: str, context: RunContext | None = None) -> tuple[str, str] | None:
    """(sha256, md5) of the file a metric will load (memoised by path, mtime and size), or None when absent."""
    try:
        path = resolve(name, context)
    except WeightsMissingError:
        return None
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = _digests(path)
    return _FINGERPRINTS[key]


def fingerprint(name: str, context: RunContext | None = None) -> str:
    """sha256 of the file a metric will load (memoised by path, mtime and size), or 'absent'."""
    d = _present_digests(name, context)
    return "absent" if d is None else d[0]


def trust_problem(name: str, context: RunContext | None = None) -> str | None:
    """Why a present checkpoint cannot be trusted (it differs from a published sha256, sha256 prefix or md5, or from
    the sha256 this machine's first fetch recorded), or None (also when it is absent or has nothing to compare
    with). The message names the file and both digests."""
    d = _present_digests(name, context)
    if d is None:
        return None
    problem = _problem(name, resolve(name, context), *d, context)
    return None if problem is None else f"weights {name!r}: {problem}; damaged or replaced file"


def verify(name: str, context: RunContext | None = None) -> tuple[str, str]:
    """(status, detail) for one entry: 'ok', 'unpinned', 'missing' or 'mismatch'."""
    try:
        path = resolve(name, context)
    except WeightsMissingError:
        return "missing", f"mova-eval weights fetch {name}"
    digest, md5 = _digests(path)
    problem = _problem(name, path, digest, md5, context)
    if problem is not None:
        return "mismatch", problem
    pins = get(name).pins()
    if expected_sha256(name, context) is None:
        if pins:  # a prefix or md5 matched; the full sha256 is not yet recorded
            return "ok", f"{path} ({' and '.join(p.kind for p in pins)} match the published; sha256={digest})"
        return "unpinned", f"{path} sha256={digest}"
    return "ok", str(path)


def fetch(name: str, *, force: bool = False, progress: bool = True, timeout: float = 60.0,
          context: RunContext | None = None) -> Path:
    """Download a checkpoint into the weights folder, resuming a partial file, and check its sha256."""
    import requests
    from tqdm import tqdm

    spec = get(name)
    dest = weights_dir(context) / spec.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and not force:
        status, detail = verify(name, context)
        if status in ("ok", "unpinned"):
            return dest
        raise WeightsChecksumError(f"{name}: {detail}; delete it or pass --force")
    part = dest.with_name(dest.name + ".part")
    want = expected_sha256(name, context)
    if part.exists() and want is None and not spec.pins():
        # Without a known hash a spliced download could not be told from a good one (and would be pinned on first
        # use): a leftover partial file from an earlier attempt is only resumed when the result will be checked.
        part.unlink()
    errors = []
    for url in spec.urls:
        try:
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            with requests.get(url, stream=True, timeout=timeout, headers=headers) as r:
                if r.status_code == 416:  # already complete
                    pass
                else:
                    r.raise_for_status()
                    mode = "ab" if have and r.status_code == 206 else "wb"
                    total = int(r.headers.get("content-length", 0)) + (have if mode == "ab" else 0)
                    with open(part, mode) as f, tqdm(total=total or None, initial=have if mode == "ab" else 0,
                                                     unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                        # 64 KiB chunks: a transfer cut short keeps nearly all it received for the resume
                        for chunk in r.iter_content(1 << 16):
                            f.write(chunk)
                            bar.update(len(chunk))
            break
        except Exception as e:  # try the next mirror, report all failures together
            errors.append(f"{url}: {e}")
    else:
        raise WeightsMissingError(name, []) from RuntimeError("; ".join(errors))
    digest, md5 = _digests(part)
    problem = _problem(name, part, digest, md5, context)
    if problem is not None:
        part.unlink(missing_ok=True)  # never resume onto bytes that failed their check
        raise WeightsChecksumError(f"{name}: the download {problem}; the partial file was removed, so the next "
                                   f"fetch starts from scratch")
    part.replace(dest)
    if want is None:
        pins = local_pins(context)
        pins[name] = digest
        _pins_path(context).write_text(json.dumps(pins, indent=2, sort_keys=True))
    return dest
