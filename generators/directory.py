"""Score clips someone already generated: find each suite item's file(s) in a folder or a manifest.

Layouts (``generator.path=DIR``; the first that applies is used):

- **sets** (the MOVA toolkit's): ``DIR/<set>/**/<item_id>*.<ext>``, searched recursively below the folder named
  after the item's category. ``DIR`` may also be the toolkit's input dir holding one step folder
  (``DIR/step_N/<set>/…``): a single sub-folder that contains the set folders is entered automatically.
- **flat**: ``DIR/<item_id>*.<ext>`` directly in ``DIR`` (used when no set folder exists).
- **manifest** (``generator.manifest=FILE``): a CSV with columns ``item_id,path[,seed]`` or a JSON object
  ``{item_id: path | [path, …]}``. Relative paths are relative to the manifest's folder.

- **numbered** (suites with ``file_match: mova_numbered``, i.e. MyBench): MOVA's ``eval_cpcer.py`` rule, see
  :func:`index_numbered` — ``*.mp4`` named ``^(\\d+)_`` in ``DIR/multi-speaker/`` (or ``DIR/step_N/…``, or ``DIR``),
  sorted by number, the k-th file for the k-th reference; a count other than the references' is an error.

A file belongs to an item when its name (without extension) is the item id, or starts with the id followed by a
non-alphanumeric character (``00000017_video_step1_seed0.mp4``); when several ids match (``a1`` and ``a1_b`` both
prefix ``a1_b_video.mp4``) the longest wins, and ``a10.mp4`` never matches ``a1``. Extensions: mp4, mkv, webm,
mov, avi (any case).

Several files for one item are several samples: the request with seed ``k`` takes the ``k``-th file (0-based)
sorted by file name (then by full path) (manifest: listed order; a CSV ``seed`` column instead pins each file to
that seed value). So ``seeds=[0,1,2]`` scores the first three samples of every item. When every file of an item
names its seed as the toolkit's convention does (``_seed(\\d+)``, ``{id}_video_{prompt}_step{N}_seed{S}.mp4``) and
no seed repeats, the files are ordered by that seed's value instead (``seed42`` before ``seed100``, which sorts
first by name), and the file's seed is recorded in the provenance (``seed``, ``seed_source: file name``).

``seeds=all`` scores every file, as the MOVA toolkit does (it walks each set folder and scores every ``.mp4``):
:meth:`DirectoryGenerator.list_samples` gives each item the seeds that pick its files — ``0 … n-1`` for the n files
of an item (the sample index, whatever seed the names carry; the name's seed is in the provenance), or the manifest's
``seed`` values — so items with different numbers of files get different numbers of requests, and an item with no
file gets one request that fails with the reason.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mova_eval.context import RunContext
from mova_eval.errors import ConfigError
from mova_eval.generators.base import Capabilities, Generator, GeneratorSettings, Problem
from mova_eval.generators.settings import output
from mova_eval.media import VIDEO_EXTENSIONS
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest, GenResult, Suite, SuiteItem

RUN_HINT = "mova-eval run generator=directory generator.path=DIR"


def is_video(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")


def matching_id(stem: str, ids_by_len: Mapping[int, set[str]]) -> str | None:
    """The longest item id that ``stem`` equals or starts with, followed by a non-alphanumeric character."""
    for n in sorted(ids_by_len, reverse=True):
        if len(stem) < n:
            continue
        head = stem[:n]
        if head in ids_by_len[n] and (len(stem) == n or not stem[n].isalnum()):
            return head
    return None


def _by_len(ids) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for i in ids:
        out.setdefault(len(i), set()).add(i)
    return out


@dataclass
class Entry:
    path: Path
    seed: int | None = None   # only from a manifest's seed column (requests then match it by value)
    seed_source: str = ""      # "manifest" when ``seed`` is set
    name_seed: int | None = None  # ``_seed(\d+)`` in the file name: orders the samples and is recorded


@dataclass
class ClipIndex:
    """Which files belong to which item, and what was found that belongs to none."""

    layout: str                                   # "sets", "flat", "numbered" (MyBench) or "manifest"
    root: Path                                    # where relative names in messages start
    files: dict[str, list[Entry]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)    # one line per file that matches no item

    def expected(self, item: SuiteItem) -> str:
        if self.layout == "sets":
            return f"expected {self.root / item.category}/{item.id}*.mp4"
        if self.layout == "flat":
            return f"expected {self.root}/{item.id}*.mp4"
        if self.layout == "numbered":
            return f"expected the numbered clip #{int(item.extra.get('mova_index', 0)) + 1} in {self.root}"
        return f"expected a row for {item.id!r} in {self.root}"

    def pick(self, item: SuiteItem, seed: int) -> tuple[int | None, str | None]:
        """(position in ``files[item.id]``, or None with the reason) for the request of one item and seed."""
        entries = self.files.get(item.id, [])
        if not entries:
            return None, f"no clip for item {item.id} in {self.root} ({self.expected(item)})"
        if any(e.seed is not None for e in entries):
            for i, e in enumerate(entries):
                if e.seed == seed:
                    return i, None
            seeds = sorted(e.seed for e in entries if e.seed is not None)
            return None, f"no clip for item {item.id} with seed {seed} in {self.root} (its seeds: {seeds})"
        if not 0 <= seed < len(entries):
            return None, (f"item {item.id} has {len(entries)} clip(s) in {self.root}, but seed {seed} asks for "
                          f"sample #{seed}: seeds index the item's files in sorted order "
                          f"(use seeds=[0..{len(entries) - 1}])")
        return seed, None


_SEED_IN_NAME = re.compile(r"_seed(\d+)")


def _seeds_from_names(index: "ClipIndex") -> None:
    """Order each item's files by the seed their names carry, where all of them carry one and none repeats."""
    for item_id, entries in index.files.items():
        found = [_SEED_IN_NAME.findall(e.path.stem) for e in entries]
        if not all(len(f) == 1 for f in found):
            continue  # some file has no seed in its name, or two: keep the sorted-by-name rule for this item
        seeds = [int(f[0]) for f in found]
        if len(set(seeds)) != len(seeds):
            continue
        for e, seed in zip(entries, seeds):
            e.name_seed = seed
        index.files[item_id] = sorted(entries, key=lambda e: e.name_seed)


def _video_files(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted((p for p in it if is_video(p)), key=lambda p: (p.name, str(p)))


def _sets_root(root: Path, categories: list[str]) -> Path | None:
    """The folder holding the set folders: DIR itself, or its single step folder (DIR/step_N/<set>)."""
    if any((root / c).is_dir() for c in categories):
        return root
    holders = sorted(d for d in root.iterdir() if d.is_dir() and any((d / c).is_dir() for c in categories))
    if len(holders) > 1:
        names = ", ".join(d.name for d in holders)
        raise ConfigError(f"{root} holds several folders with set sub-folders ({names}); point generator.path at "
                          f"one of them, e.g. generator.path={holders[0]}")
    return holders[0] if holders else None


def index_folder(root: Path, suite_items: list[SuiteItem]) -> ClipIndex:
    categories = list(dict.fromkeys(it.category for it in suite_items))
    sets_root = _sets_root(root, categories)
    if sets_root is not None:
        index = ClipIndex("sets", sets_root)
        for cat in categories:
            folder = sets_root / cat
            if not folder.is_dir():
                continue
            ids = _by_len(it.id for it in suite_items if it.category == cat)
            for p in _video_files(folder, recursive=True):
                item_id = matching_id(p.stem, ids)
                if item_id is None:
                    index.unknown.append(f"{p} matches no item of set {cat}")
                else:
                    index.files.setdefault(item_id, []).append(Entry(p))
        # Folders of sets this suite does not have (set1/ when scoring verse_set3) are left alone.
        index.unknown += [f"{p} lies outside the set folders" for p in _video_files(sets_root, recursive=False)]
        _seeds_from_names(index)
        return index
    index = ClipIndex("flat", root)
    ids = _by_len(it.id for it in suite_items)
    for p in _video_files(root, recursive=False):
        item_id = matching_id(p.stem, ids)
        if item_id is None:
            index.unknown.append(f"{p} matches no item of the suite")
        else:
            index.files.setdefault(item_id, []).append(Entry(p))
    deeper = [p for p in _video_files(root, recursive=True) if p.parent != root]
    if deeper:
        index.unknown += [f"{p} lies in a sub-folder that is no set of the suite "
                          f"(sets: {', '.join(categories)})" for p in deeper]
    _seeds_from_names(index)
    return index


_MOVA_NUMBER = re.compile(r"(\d+)_")


def _ranges(nums: list[int]) -> str:
    """[1, 2, 3, 5, 7, 8] → '1–3, 5, 7–8'."""
    out, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            out.append(str(start) if start == n else f"{start}–{n}")
            start = None
    return ", ".join(out)


def index_numbered(root: Path, suite_items: list[SuiteItem]) -> ClipIndex:
    """MOVA's ``eval_cpcer.py`` pairing (MyBench): the ``*.mp4`` files directly in ``ROOT/<category>/`` (or
    ``ROOT/step_N/<category>/``, or ``ROOT`` itself) whose names start with ``(\\d+)_``, sorted by that number; the
    k-th file belongs to the item whose ``extra["mova_index"]`` is k. MOVA asserts that the file count equals the
    number of references; here a different count (or a number used twice, which makes the order ambiguous) is a
    ConfigError naming the folder, the numbers found and the ones missing, before anything is scored."""
    categories = list(dict.fromkeys(it.category for it in suite_items))
    sets_root = _sets_root(root, categories)
    folder = sets_root / categories[0] if sets_root is not None else root
    index = ClipIndex("numbered", folder)
    numbered: list[tuple[int, Path]] = []
    for p in sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.name):
        m = _MOVA_NUMBER.match(p.name)
        if p.suffix.lower() != ".mp4" or p.name.startswith("."):
            if is_video(p):
                index.unknown.append(f"{p} is not .mp4 (MOVA's cpCER reads only *.mp4)")
        elif m is None:
            index.unknown.append(f"{p} does not start with a number and '_' (MOVA's cpCER pairs files named "
                                 f"^(\\d+)_ with the references in number order)")
        else:
            numbered.append((int(m.group(1)), p))
    numbered.sort(key=lambda x: x[0])
    counts = {int(it.extra.get("mova_count", len(suite_items))) for it in suite_items}
    expected = max(counts) if counts else 0
    nums = [n for n, _ in numbered]
    repeated = sorted({n for n in nums if nums.count(n) > 1})
    where = f"{folder} (MOVA's eval_cpcer.py pairs the k-th *.mp4 named ^(\\d+)_, by number, with reference line k)"
    if repeated:
        names = ", ".join(p.name for n, p in numbered if n in repeated)
        raise ConfigError(f"{where}: number(s) {_ranges(repeated)} are used by several files ({names}); each "
                          f"reference needs exactly one clip")
    if len(numbered) != expected:
        have = _ranges(sorted(set(nums))) or "none"
        base = 0 if nums and min(nums) == 0 else 1
        gaps = sorted(set(range(base, base + expected)) - set(nums))
        extra = sorted(n for n in nums if not base <= n < base + expected)
        detail = [f"{len(numbered)} numbered clip(s) for {expected} references; numbers found: {have}"]
        if gaps:
            detail.append(f"missing (numbering {base}–{base + expected - 1}): {_ranges(gaps)}")
        if extra:
            detail.append(f"outside {base}–{base + expected - 1}: {_ranges(extra)}")
        if index.unknown:
            detail.append(f"not counted: {len(index.unknown)} file(s), e.g. {index.unknown[0]}")
        raise ConfigError(f"{where}: " + "; ".join(detail))
    by_index = {int(it.extra["mova_index"]): it.id for it in suite_items if "mova_index" in it.extra}
    for k, (_, p) in enumerate(numbered):
        if k in by_index:
            index.files[by_index[k]] = [Entry(p)]
    return index


def read_manifest(path: Path, suite_items: list[SuiteItem]) -> ClipIndex:
    """CSV ``item_id,path[,seed]`` or JSON ``{item_id: path | [paths]}``; errors name the file and the row."""
    if not path.is_file():
        raise ConfigError(f"generator.manifest {path} does not exist")
    base = path.parent
    rows: list[tuple[str, str, int | None, str]] = []  # item id, path, seed, where in the manifest
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"manifest {path} is not valid JSON: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"manifest {path} must be a JSON object {{item_id: path or [paths]}}")
        for item_id, value in data.items():
            paths = value if isinstance(value, list) else [value]
            for i, p in enumerate(paths):
                if not isinstance(p, str) or not p:
                    raise ConfigError(f"manifest {path}: item {item_id!r}: entry {i} must be a file path string")
                rows.append((str(item_id), p, None, f"item {item_id!r}"))
    else:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = [c.strip() for c in (reader.fieldnames or [])]
            if "item_id" not in cols or "path" not in cols:
                raise ConfigError(f"manifest {path} needs a header with columns item_id,path[,seed]; got {cols}")
            reader.fieldnames = cols
            has_seed = "seed" in cols
            for line, row in enumerate(reader, start=2):
                item_id, p = (row.get("item_id") or "").strip(), (row.get("path") or "").strip()
                if not item_id or not p:
                    raise ConfigError(f"manifest {path}, line {line}: item_id and path must both be set")
                seed = None
                if has_seed:
                    try:
                        seed = int((row.get("seed") or "").strip())
                    except ValueError:
                        raise ConfigError(f"manifest {path}, line {line}: seed must be an integer, "
                                          f"got {row.get('seed')!r}") from None
                rows.append((item_id, p, seed, f"line {line}"))
    known = {it.id for it in suite_items}
    index = ClipIndex("manifest", path)
    seen: dict[tuple[str, int], str] = {}
    for item_id, p, seed, where in rows:
        file = Path(p).expanduser()
        file = file if file.is_absolute() else base / file
        if item_id not in known:
            index.unknown.append(f"{file} ({where} of {path.name}) names item {item_id!r}, which is not in the suite")
            continue
        if seed is not None:
            if (item_id, seed) in seen:
                raise ConfigError(f"manifest {path}, {where}: item {item_id!r} seed {seed} is already given "
                                  f"at {seen[(item_id, seed)]}")
            seen[(item_id, seed)] = where
        index.files.setdefault(item_id, []).append(Entry(file, seed, "manifest" if seed is not None else ""))
    return index


@dataclass(frozen=True)
class DirectorySettings(GeneratorSettings):
    path: str | None = output(None, "the clip folder (required unless manifest is given)")
    manifest: str | None = output(None, "a CSV/JSON mapping item ids to files (relative paths: relative to it)")


#: ``mova-eval validate`` decodes every clip by default when the folder holds fewer than this many
DECODE_CHECK_MAX_FILES = 1000


class DirectoryGenerator(Generator):
    name = "directory"
    Settings = DirectorySettings
    capabilities = Capabilities(makes_clips=False)

    def __init__(self, config: Mapping[str, Any], device: str = "cpu", context: RunContext | None = None):
        super().__init__(config, device, context)
        av = self._availability(self.settings)
        if not av.ok:
            raise ConfigError(f"{av.reason} (e.g. {av.command})")
        s = self.settings
        self.path = Path(s.path).expanduser() if s.path else None
        self.manifest = Path(s.manifest).expanduser() if s.manifest else None
        self._index: ClipIndex | None = None
        self._items: list[SuiteItem] | None = None

    @classmethod
    def _availability(cls, s: DirectorySettings) -> Availability:
        if not s.path and not s.manifest:
            return Availability(False, "needs generator.path=DIR (or generator.manifest=FILE)", RUN_HINT)
        if s.manifest and not Path(s.manifest).expanduser().is_file():
            return Availability(False, f"generator.manifest {s.manifest} does not exist",
                                RUN_HINT + " generator.manifest=FILE")
        if s.path and not Path(s.path).expanduser().is_dir():
            return Availability(False, f"generator.path {s.path} is not a folder", RUN_HINT)
        return Availability(True)

    @classmethod
    def default_label(cls, config: Mapping[str, Any]) -> tuple[str, str] | None:
        """The clip folder's name (a manifest: its file name without extension), so that runs over
        ``clips/MOVA-360p`` and ``clips/LTX-2`` are two models in every report without any extra option."""
        if config.get("manifest"):
            return Path(str(config["manifest"])).expanduser().stem, "the manifest's file name"
        if config.get("path"):
            folder = Path(str(config["path"])).expanduser().resolve()
            if re.fullmatch(r"step_\d+", folder.name) and folder.parent.name:  # the toolkit's DIR/step_N
                return folder.parent.name, f"the name of the folder holding {folder.name}/"
            if folder.name:
                return folder.name, "the clip folder's name"
        return None

    def bind_suite(self, suite: Suite) -> None:
        super().bind_suite(suite)
        self._items, self._index = list(suite.items), None
        self._file_match = suite.file_match
        if suite.file_match == "mova_numbered" and not self.manifest:
            self._index = self.build_index(self._items)  # a count that differs from MOVA's refuses the run now

    _file_match = "id"

    def build_index(self, items: list[SuiteItem], file_match: str | None = None) -> ClipIndex:
        if self.manifest:
            return read_manifest(self.manifest, items)
        if (file_match or self._file_match) == "mova_numbered":
            return index_numbered(self.path, items)
        return index_folder(self.path, items)

    def list_samples(self, suite: Suite) -> dict[str, list[int]]:
        """``seeds=all``: for every item, the seeds whose requests pick each of its files (see the module docstring);
        items without a file are left out (the runner plans one failing request for them)."""
        index = self._index if self._index is not None else self.build_index(list(suite.items), suite.file_match)
        self._index = index
        out: dict[str, list[int]] = {}
        for item in suite.items:
            entries = index.files.get(item.id, [])
            if not entries:
                continue
            if any(e.seed is not None for e in entries):  # a manifest's seed column pins each file to its value
                out[item.id] = [int(e.seed) for e in entries if e.seed is not None]
            else:
                out[item.id] = list(range(len(entries)))
        return out

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if self._index is None:
            # Match against the whole suite when the runner bound one, else against the requested items.
            items = self._items if self._items is not None else list({r.item.id: r.item for r in requests}.values())
            self._index = self.build_index(items)
        index = self._index
        out = []
        for r in requests:
            k, error = index.pick(r.item, r.seed)
            entries = index.files.get(r.item.id, [])
            prov: dict[str, Any] = {"source": "directory", "layout": index.layout, "root": str(index.root),
                                    "samples": len(entries)}
            path = None
            if k is not None:
                path = entries[k].path
                prov.update(file=str(path), sample_index=k)
                if entries[k].seed is not None:
                    prov.update(seed=entries[k].seed, seed_source=entries[k].seed_source or "manifest")
                elif entries[k].name_seed is not None:
                    prov.update(seed=entries[k].name_seed, seed_source="file name")
                if not path.is_file():
                    path, error = None, f"{index.root} lists {entries[k].path} for item {r.item.id}, which does not exist"
            out.append(GenResult(r.request_id, str(path) if path else None, error, prov))
        return out

    def validate(self, suite: Suite, seeds: Sequence[int] | str | None = None, *, decode: bool | None = None,
                 audio_track: int | None = None) -> list[Problem]:
        """Every problem with the folder/manifest for this suite: missing, unknown and unused files, and files
        that cannot be scored fully (unreadable, truncated, no audio or video stream, zero duration).
        ``seeds`` are the run's seeds (default [0]; ``"all"``: every file is used): they decide which samples count
        as used. ``decode`` also
        decodes every file as a run would (``media.problems``; None: when the folder holds fewer than
        ``DECODE_CHECK_MAX_FILES`` clips), reporting decode failures as ``bad file`` and decode warnings as
        ``note`` (notes do not fail validation)."""
        from mova_eval import media

        every = isinstance(seeds, str) and seeds.lower() == "all"
        try:
            index = self.build_index(list(suite.items), suite.file_match)
        except ConfigError as e:
            return [Problem("config", str(e))]
        problems: list[Problem] = []
        for item in suite.items:
            entries = index.files.get(item.id, [])
            if not entries:
                problems.append(Problem("missing", f"item {item.id} ({item.category}) has no clip "
                                                   f"({index.expected(item)})", (item.id,)))
                continue
            used: set[int] = set()
            item_seeds = ([int(e.seed) if e.seed is not None else i for i, e in enumerate(entries)] if every
                          else list(seeds) if seeds and not isinstance(seeds, str) else [0])
            for s in item_seeds:
                k, error = index.pick(item, s)
                if error or k is None:
                    problems.append(Problem("missing", str(error), (item.id,)))
                else:
                    used.add(k)
            extra = [e.path for i, e in enumerate(entries) if i not in used]
            if extra:
                names = ", ".join(str(p) for p in extra[:5]) + (" …" if len(extra) > 5 else "")
                problems.append(Problem("unused", f"item {item.id} has {len(entries)} clips, seeds {item_seeds} "
                                                  f"score {len(used)}; not scored: {names} (seeds=all scores "
                                                  f"every file)", (item.id,)))
        problems += [Problem("unknown", u) for u in index.unknown]
        n_files = sum(len(entries) for entries in index.files.values())
        deep = n_files < DECODE_CHECK_MAX_FILES if decode is None else decode
        for item_id, entries in index.files.items():
            for e in entries:
                notes: list[str] = []
                for p in media.problems(e.path, deep_decode=deep, audio_track=audio_track, notes=notes):
                    problems.append(Problem("bad file", f"{e.path} (item {item_id}): {p}", (item_id,)))
                problems += [Problem("note", f"{e.path} (item {item_id}): {n}", (item_id,)) for n in notes]
        return problems
