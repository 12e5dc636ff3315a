"""Prompt suites: Verse-Bench (file, folder, or the Hugging Face dataset), the embedded smoke suite, and MOVA's
MyBench multi-speaker set (the toolkit's ``references.txt``, see :func:`load_mybench`).

Verse-Bench and smoke use the Verse-Bench JSON shape ``{set: {item_id: {prompt, video_prompt, audio_prompt, speech_prompt, …}}}``,
so one validating loader serves them. A malformed file raises SuiteError naming the item and the field.
"""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from mova_eval.errors import ConfigError, SuiteError
from mova_eval.spec import Suite, SuiteItem

VERSE_HF_DATASET = "dorni/Verse-Bench"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")
_AUDIO_EXT = (".wav", ".flac")


def detect_language(text: str) -> str:
    """'zh' if the text holds CJK ideographs, 'en' for other non-empty text, 'none' when empty."""
    if not text.strip():
        return "none"
    return "zh" if _CJK.search(text) else "en"


def _field(raw: Mapping[str, Any], name: str, kind: type | tuple[type, ...], source: str | Path, item_id: str,
           required: bool = True, default: Any = None) -> Any:
    if name not in raw:
        if required:
            raise SuiteError(source, "is missing", item=item_id, field=name)
        return default
    value = raw[name]
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SuiteError(source, f"must be {want}, got {type(value).__name__}", item=item_id, field=name)
    return value


def parse_item(raw: Any, item_id: str, category: str, source: str, assets: Path | None = None) -> SuiteItem:
    if not isinstance(raw, dict):
        raise SuiteError(source, f"must be an object, got {type(raw).__name__}", item=item_id)
    prompt = _field(raw, "prompt", str, source, item_id)
    if not prompt.strip():
        raise SuiteError(source, "is empty", item=item_id, field="prompt")
    video_prompt = _field(raw, "video_prompt", str, source, item_id, required=False, default="")
    audio = _field(raw, "audio_prompt", (list, str), source, item_id, required=False, default=[])
    audio = [audio] if isinstance(audio, str) else audio
    for i, a in enumerate(audio):
        if not isinstance(a, str):
            raise SuiteError(source, f"entry {i} must be a string", item=item_id, field="audio_prompt")
    speech = _field(raw, "speech_prompt", dict, source, item_id, required=False, default={})
    text = speech.get("text", "") if speech else ""
    speaker = speech.get("speaker", "") if speech else ""
    if not isinstance(text, str):
        raise SuiteError(source, "must be a string", item=item_id, field="speech_prompt.text")
    if not isinstance(speaker, str):
        raise SuiteError(source, "must be a string", item=item_id, field="speech_prompt.speaker")
    first_frame = raw.get("first_frame_path") or None
    reference_audio = raw.get("reference_audio") or None
    if assets is not None:
        first_frame = first_frame and str((assets / first_frame)) if first_frame else _find(assets, item_id, _IMAGE_EXT)
        reference_audio = _find(assets, item_id, _AUDIO_EXT) if not reference_audio else str(assets / reference_audio)
    extra = {}
    quoted = re.findall(r"[\"“]([^\"”]+)[\"”]", prompt)
    if text and quoted and not any(_loose(text) == _loose(q) for q in quoted):
        extra["prompt_quote_differs"] = True  # 23 Verse-Bench items: the WER reference is speech_prompt.text
    return SuiteItem(
        id=str(item_id), category=category, prompt=prompt, language=detect_language(text),
        video_prompt=video_prompt, audio_prompts=tuple(audio), speech_text=text, speaker=speaker,
        first_frame=first_frame, reference_audio=reference_audio, extra=extra,
    )


def _loose(s: str) -> str:
    return re.sub(r"[\W_]+", "", s.lower().replace("’", "'"))


def _find(folder: Path, item_id: str, exts: tuple[str, ...]) -> str | None:
    for ext in exts:
        p = folder / f"{item_id}{ext}"
        if p.is_file():
            return str(p)
    return None


def parse_suite(data: Any, *, name: str, source: str, version: int = 1, sets: list[str] | None = None,
                asset_root: Path | None = None, description: str = "", aggregation: str = "category_mean") -> Suite:
    if not isinstance(data, dict) or not data:
        raise SuiteError(source, "top level must be a non-empty object of sets ({set: {item_id: item}})")
    items: list[SuiteItem] = []
    seen: dict[str, str] = {}
    for category, members in data.items():
        if sets is not None and category not in sets:
            continue
        if not isinstance(members, dict):
            raise SuiteError(source, f"set {category!r} must map item ids to items, got {type(members).__name__}")
        assets = (asset_root / category) if asset_root is not None else None
        for item_id, raw in members.items():
            if item_id in seen:
                raise SuiteError(source, f"id repeats (also in set {seen[item_id]!r})", item=item_id)
            seen[item_id] = category
            items.append(parse_item(raw, item_id, category, source, assets if assets and assets.is_dir() else None))
    if sets is not None:
        missing = [s for s in sets if s not in data]
        if missing:
            raise SuiteError(source, f"has no set(s) {missing}; it has {list(data)}")
    if not items:
        raise SuiteError(source, "contains no items")
    return Suite(name=name, version=version, items=tuple(items), source=source, description=description,
                 aggregation=aggregation)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SuiteError(path, "file does not exist") from e
    except json.JSONDecodeError as e:
        raise SuiteError(path, f"is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except UnicodeDecodeError as e:
        raise SuiteError(path, f"is not UTF-8 text (byte {e.start} is {e.object[e.start:e.start + 1]!r}); a suite "
                               f"file is JSON") from e
    except IsADirectoryError as e:
        raise SuiteError(path, "is a folder; give the prompt JSON file, or a folder the verse loader accepts") from e
    except PermissionError as e:
        raise SuiteError(path, "cannot be read (permission denied)") from e


def _folder_to_data(folder: Path) -> tuple[Any, Path | None]:
    """A folder holding the prompt JSON (``verse_bench_prompts.json`` or one JSON of sets), optionally with
    per-set asset folders ``<set>/<id>.jpg|png`` (first frames) and ``<set>/<id>.wav`` (reference audio); or a
    folder of per-item files ``<set>/<id>.json`` as the upstream Verse-Bench code reads them."""
    for candidate in [folder / "verse_bench_prompts.json", *sorted(folder.glob("*.json"))]:
        if candidate.is_file():
            return _read_json(candidate), folder
    data: dict[str, dict[str, Any]] = {}
    for set_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in sorted(set_dir.glob("*.json")):
            data.setdefault(set_dir.name, {})[f.stem] = _read_json(f)
    if not data:
        raise SuiteError(folder, "holds no prompt JSON (expected verse_bench_prompts.json or <set>/<id>.json files)")
    return data, folder


def load_verse(path: str | None, *, name: str = "verse", sets: list[str] | None = None,
               hf_dataset: str = VERSE_HF_DATASET, version: int = 1) -> Suite:
    if path is None:
        folder = _download_hf(hf_dataset)
        data, assets = _folder_to_data(folder)
        source = f"hf://{hf_dataset}"
    else:
        p = Path(path).expanduser()
        if p.is_dir():
            data, assets = _folder_to_data(p)
        elif p.is_file():
            data, assets = _read_json(p), None
        else:
            raise SuiteError(p, "does not exist (suite.path must be the prompt JSON or a Verse-Bench folder)")
        source = str(p)
    return parse_suite(data, name=name, source=source, version=version, sets=sets, asset_root=assets,
                       description="Verse-Bench (UniVerse-1 / OpenMOSS MOVA evaluation prompts)")


def _download_hf(dataset: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(dataset, repo_type="dataset"))
    except Exception as e:  # offline or hub error: say how to proceed
        raise SuiteError(
            f"hf://{dataset}",
            f"could not be fetched ({e.__class__.__name__}). Pass suite.path=FILE_OR_FOLDER with the prompt JSON "
            "(e.g. verse_bench_prompts.json from the OpenMOSS/MOVA evaluation toolkit)",
        ) from e


def load_smoke() -> Suite:
    text = resources.files("mova_eval.data").joinpath("smoke_suite.json").read_text(encoding="utf-8")
    return parse_suite(json.loads(text), name="smoke", source="mova_eval/data/smoke_suite.json", version=1,
                       description="Embedded smoke suite: original prompts covering speech (en, zh), dialogue, "
                                   "sound effects, music and ambience")


MYBENCH_CATEGORY = "multi-speaker"
MYBENCH_FILES = ("references.txt", "mybench_multispeaker_references.txt")
_TAG = re.compile(r"\[S(\d+)\]")


def load_mybench(path: str | None, *, name: str = "mybench", version: int = 1) -> Suite:
    """MOVA's MyBench multi-speaker set: one item per non-blank line of the toolkit's ``references.txt``
    (OpenMOSS/MOVA ``evaluation/metrics/cpcer/references.txt``: 27 lines, turns tagged ``[S01] … [S02] …``).

    Item ``NN`` (two digits, 1-based) is line NN, in the category ``multi-speaker`` (MOVA's folder and JSON key).
    As in the toolkit's ``read_txt_lines``, lines are stripped and blank lines skipped. The generation prompts of
    MyBench are not published with the toolkit, so an item's ``prompt`` is its transcript without the tags (marked
    in ``extra["prompt_source"]``); score existing clips with ``generator=directory``, which pairs files with items
    as ``eval_cpcer.py`` does (``Suite.file_match = "mova_numbered"``)."""
    if not path:
        raise SuiteError("suite mybench", "needs suite.path=FILE: MOVA's references.txt (OpenMOSS/MOVA "
                                          "evaluation/metrics/cpcer/references.txt), or the folder holding it")
    p = Path(path).expanduser()
    if p.is_dir():
        found = [p / f for f in MYBENCH_FILES if (p / f).is_file()]
        if not found:
            raise SuiteError(p, f"holds no MyBench references (expected one of {', '.join(MYBENCH_FILES)})")
        p = found[0]
    elif not p.is_file():
        raise SuiteError(p, "does not exist (suite.path must be MOVA's references.txt or the folder holding it)")
    try:
        raw = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise SuiteError(p, f"is not UTF-8 text (byte {e.start}); MyBench references are one transcript per "
                            f"line") from e
    except PermissionError as e:
        raise SuiteError(p, "cannot be read (permission denied)") from e
    lines: list[tuple[int, str, str]] = []
    for lineno, line in enumerate(raw, start=1):
        text = line.strip()
        if not text:
            continue
        tags = _TAG.findall(text)
        if not tags or not text.startswith("["):
            raise SuiteError(p, f"line {lineno} is not a speaker-tagged transcript (each line must start with a "
                                f"tag such as [S01] and tag every turn): {text[:60]!r}")
        plain = " ".join(_TAG.sub(" ", text).split())
        lines.append((lineno, text, plain))
    if not lines:
        raise SuiteError(p, "contains no reference lines")
    # mova_index / mova_count: the item's 0-based position among the references and their number, so the
    # directory generator pairs the k-th numbered clip with the k-th line even under suite.limit or suite.shard
    items = [SuiteItem(
        id=f"{k:02d}", category=MYBENCH_CATEGORY, prompt=plain, language=detect_language(plain), speech_text=text,
        extra={"prompt_source": "reference transcript (MyBench prompts are not in the toolkit)",
               "reference_line": lineno, "mova_index": k - 1, "mova_count": len(lines)})
        for k, (lineno, text, plain) in enumerate(lines, start=1)]
    return Suite(name=name, version=version, items=tuple(items), source=str(p), file_match="mova_numbered",
                 description="MOVA MyBench multi-speaker subset (cpCER references of the OpenMOSS/MOVA toolkit)")


def load_suite(cfg: Mapping[str, Any]) -> Suite:
    """Build a suite from its config group (``conf/suite/*.yaml``), applying ``limit``."""
    kind = cfg.get("loader", cfg.get("name"))
    if kind == "smoke":
        suite = load_smoke()
        if cfg.get("path"):
            suite = parse_suite(_read_json(Path(cfg["path"])), name=cfg.get("name", "custom"), source=str(cfg["path"]))
    elif kind == "verse":
        suite = load_verse(cfg.get("path"), name=cfg.get("name", "verse"), sets=cfg.get("sets"),
                           hf_dataset=cfg.get("hf_dataset", VERSE_HF_DATASET), version=int(cfg.get("version", 1)))
    elif kind == "mybench":
        suite = load_mybench(cfg.get("path"), name=cfg.get("name", "mybench"), version=int(cfg.get("version", 1)))
    else:
        raise SuiteError(str(kind), "unknown suite loader (known: verse, smoke, mybench)")
    from dataclasses import replace

    refs = cfg.get("references") or {}
    if not isinstance(refs, Mapping) or not all(isinstance(v, str) or v is None for v in refs.values()):
        raise SuiteError(f"suite {suite.name}", "references must map metric names to reference names "
                         "(e.g. references: {fvd: real_videos, fad: per_item})")
    suite = replace(suite, references={str(k): v for k, v in refs.items() if v})
    limit = cfg.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"suite.limit={limit!r} must be a whole number ≥ 0 (0 or null: every item)")
    if limit:
        suite = replace(suite, items=suite.items[: int(limit)])
    shard = parse_shard(cfg.get("shard"))
    if shard is not None:
        suite = replace(suite, items=shard_items(suite.items, *shard))
    return suite


def parse_shard(value: Any) -> tuple[int, int] | None:
    """``suite.shard`` ("I/N", 0-based) as (I, N); None when unset. Anything else is a ConfigError naming it."""
    from mova_eval.errors import ConfigError

    if value is None or value == "":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not m:
        raise ConfigError(f"suite.shard={value!r} is not I/N (0-based shard I of N, e.g. suite.shard=0/2)")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or index >= count:
        raise ConfigError(f"suite.shard={value!r}: need N >= 1 and 0 <= I < N (e.g. suite.shard=0/2 … 1/2)")
    return index, count


def _shard_rank(item_id: str) -> str:
    import hashlib

    return hashlib.sha256(item_id.encode("utf-8")).hexdigest()


def shard_of(items: tuple[SuiteItem, ...] | list[SuiteItem], count: int) -> dict[str, int]:
    """Item id → shard (of ``count``). Within each set (category, taken in name order) the items are ordered by
    the sha256 of their id and dealt round-robin, the deal running on from one set to the next: every item lands in
    exactly one shard, each set is spread evenly (shard sizes differ by at most one per set and overall), and the
    assignment does not depend on the order of the items in the file."""
    by_cat: dict[str, list[str]] = {}
    for it in items:
        by_cat.setdefault(it.category, []).append(it.id)
    out: dict[str, int] = {}
    dealt = 0
    for cat in sorted(by_cat):
        for item_id in sorted(by_cat[cat], key=lambda i: (_shard_rank(i), i)):
            out[item_id] = dealt % count
            dealt += 1
    return out


def shard_items(items: tuple[SuiteItem, ...], index: int, count: int) -> tuple[SuiteItem, ...]:
    """The items of shard ``index`` of ``count`` (see :func:`shard_of`), in the suite's own order."""
    assign = shard_of(items, count)
    return tuple(it for it in items if assign[it.id] == index)


def summarize(suite: Suite) -> dict[str, Any]:
    """Counts per category and language, for `validate` and the run log."""
    out: dict[str, Any] = {"items": len(suite), "with_speech": sum(it.has_speech for it in suite.items), "categories": {}}
    for it in suite.items:
        c = out["categories"].setdefault(it.category, {"items": 0, "en": 0, "zh": 0, "none": 0})
        c["items"] += 1
        c[it.language] += 1
    return out
