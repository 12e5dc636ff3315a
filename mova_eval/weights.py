"""The checkpoint registry: every model file a metric or generator loads, where it comes from, and its sha256.

Nothing downloads during a run. Files are found in ``$MOVA_EVAL_WEIGHTS`` (a folder of files users already have)
or in the cache root's ``weights/`` folder, where ``mova-eval weights fetch NAME`` puts them (resumable, checked).
A sha256 is pinned in the registry once a download was verified; until then the first fetch records the hash it
saw in ``weights/pins.json`` and later verifications compare against it. Where the publisher gives only an md5
(MMAudio's release files), the spec carries that md5 and where it was published: a fetch, ``weights verify`` and the
runner's pre-load check all compare against it, so such a file is checked, not trusted on first use.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mova_eval.errors import RegistryKeyError, WeightsChecksumError, WeightsMissingError


@dataclass(frozen=True)
class WeightSpec:
    name: str
    filename: str
    urls: tuple[str, ...]
    license: str
    used_by: tuple[str, ...]
    sha256: str | None = None  # pinned after a verified download
    size: int | None = None  # bytes, when known
    description: str = ""
    extra_files: tuple[str, ...] = field(default_factory=tuple)  # companions that must sit beside it
    non_commercial: bool = False  # the licence forbids commercial use (shown by `ls`/`weights list`, kept in run.json)
    md5: str | None = None  # the publisher's md5, where that is the only digest published
    md5_source: str = ""  # where that md5 is published (repository, file), required with md5

    def __post_init__(self):
        if self.md5 is not None and (len(self.md5) != 32 or not all(c in "0123456789abcdef" for c in self.md5)):
            raise ValueError(f"weights {self.name!r}: md5 must be 32 lowercase hex digits, got {self.md5!r}")
        if self.md5 is not None and not self.md5_source:
            raise ValueError(f"weights {self.name!r}: an md5 needs md5_source (where the publisher gives it)")


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


def weights_dir() -> Path:
    from mova_eval.cache import cache_root

    return cache_root() / "weights"


def search_paths(spec: WeightSpec) -> list[Path]:
    paths = []
    if os.environ.get("MOVA_EVAL_WEIGHTS"):
        for root in os.environ["MOVA_EVAL_WEIGHTS"].split(os.pathsep):
            paths.append(Path(root).expanduser() / spec.filename)
    paths.append(weights_dir() / spec.filename)
    return paths


def resolve(name: str) -> Path:
    """Path of a present checkpoint, or WeightsMissingError with the fetch command."""
    spec = get(name)
    searched = search_paths(spec)
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


def _pins_path() -> Path:
    return weights_dir() / "pins.json"


def local_pins() -> dict[str, str]:
    p = _pins_path()
    return json.loads(p.read_text()) if p.is_file() else {}


def expected_sha256(name: str) -> str | None:
    spec = get(name)
    return spec.sha256 or local_pins().get(name)


_FINGERPRINTS: dict[tuple[str, float, int], tuple[str, str]] = {}


def _present_digests(name: str) -> tuple[str, str] | None:
    """(sha256, md5) of the file a metric will load (memoised by path, mtime and size), or None when absent."""
    try:
        path = resolve(name)
    except WeightsMissingError:
        return None
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = _digests(path)
    return _FINGERPRINTS[key]


def fingerprint(name: str) -> str:
    """sha256 of the file a metric will load (memoised by path, mtime and size), or 'absent'."""
    d = _present_digests(name)
    return "absent" if d is None else d[0]


def trust_problem(name: str) -> str | None:
    """Why a present checkpoint cannot be trusted (its sha256 differs from the pinned or first-fetch hash, or its
    md5 from the publisher's), or None (also when it is absent or has nothing to compare with)."""
    d = _present_digests(name)
    if d is None:
        return None
    sha, md5 = d
    want = expected_sha256(name)
    if want is not None and sha != want:
        return f"weights {name!r} have sha256 {sha}, expected {want} (damaged or replaced file)"
    spec = get(name)
    if spec.md5 is not None and md5 != spec.md5:
        return f"weights {name!r} have md5 {md5}, expected the publisher's {spec.md5} ({spec.md5_source}); " \
               f"damaged or replaced file"
    return None


def verify(name: str) -> tuple[str, str]:
    """(status, detail) for one entry: 'ok', 'unpinned', 'missing' or 'mismatch'."""
    try:
        path = resolve(name)
    except WeightsMissingError:
        return "missing", f"mova-eval weights fetch {name}"
    digest, md5 = _digests(path)
    want = expected_sha256(name)
    spec = get(name)
    if want is not None and digest != want:
        return "mismatch", f"{path} sha256={digest}, expected {want}"
    if spec.md5 is not None:
        if md5 != spec.md5:
            return "mismatch", f"{path} md5={md5}, expected the publisher's {spec.md5} ({spec.md5_source})"
        if want is None:
            return "ok", f"{path} (md5 matches the publisher's; sha256={digest})"
    if want is None:
        return "unpinned", f"{path} sha256={digest}"
    return "ok", str(path)


def fetch(name: str, *, force: bool = False, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download a checkpoint into the weights folder, resuming a partial file, and check its sha256."""
    import requests
    from tqdm import tqdm

    spec = get(name)
    dest = weights_dir() / spec.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and not force:
        status, detail = verify(name)
        if status in ("ok", "unpinned"):
            return dest
        raise WeightsChecksumError(f"{name}: {detail}; delete it or pass --force")
    part = dest.with_name(dest.name + ".part")
    want = expected_sha256(name)
    if part.exists() and want is None and spec.md5 is None:
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
    if want is not None and digest != want:
        part.unlink(missing_ok=True)  # never resume onto bytes that failed their check
        raise WeightsChecksumError(f"{name}: downloaded file has sha256 {digest}, expected {want}; the partial "
                                   f"file was removed, so the next fetch starts from scratch")
    if spec.md5 is not None and md5 != spec.md5:
        part.unlink(missing_ok=True)
        raise WeightsChecksumError(f"{name}: downloaded file has md5 {md5}, expected the publisher's {spec.md5} "
                                   f"({spec.md5_source}); the partial file was removed, so the next fetch starts "
                                   f"from scratch")
    part.replace(dest)
    if want is None:
        pins = local_pins()
        pins[name] = digest
        _pins_path().write_text(json.dumps(pins, indent=2, sort_keys=True))
    return dest
