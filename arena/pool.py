"""The battle pool: clips of the same prompt from different generators, imported from run directories.

``import_runs`` reads each run's ``run.json`` and ``items.parquet`` (mova_eval.results), makes a playback copy of
every clip (``playback.make_copy``) under a random id, and records model, prompt and clip rows. Importing the same
clip again is a no-op. ``add_gold`` makes gold pairs: two models' clips of one prompt, one of them with its sound
delayed by 500 ms; the in-sync clip is the known right answer.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from mova_eval.arena import playback
from mova_eval.arena.storage import Clip, Model, Prompt, Store
from mova_eval.errors import MovaEvalError


@dataclass
class ImportReport:
    models: dict[str, int] = field(default_factory=dict)   # model → clips added
    skipped: list[str] = field(default_factory=list)        # reasons, one per clip not imported
    gold: int = 0

    def lines(self) -> list[str]:
        out = [f"{m}: {n} clips added" for m, n in sorted(self.models.items())]
        if self.gold:
            out.append(f"gold pairs added: {self.gold}")
        out += [f"skipped: {s}" for s in self.skipped]
        return out


def parse_run_arg(arg: str) -> tuple[Path, str | None]:
    """``RUN_DIR`` or ``RUN_DIR=LABEL`` (the label names the model on the board)."""
    if "=" in arg and not Path(arg).exists():
        path, label = arg.rsplit("=", 1)
        return Path(path), label.strip() or None
    return Path(arg), None


def _label(gen: dict) -> str:
    return str(gen.get("label") or gen.get("model") or gen.get("name") or "unknown")


def _suite_items(cfg: dict) -> dict:
    try:
        from mova_eval.suites import load_suite

        return {it.id: it for it in load_suite(cfg["suite"]).items}
    except Exception:  # the suite file may not exist on this machine; prompts then come from provenance
        return {}


def media_dir_for(store: Store, media_dir: str | Path | None) -> Path:
    """The folder of playback copies: given, or remembered in the database, or beside a SQLite file."""
    if media_dir is None:
        media_dir = store.setting("media_dir")
    if media_dir is None:
        if not store.sqlite:
            raise MovaEvalError("--media-dir is required with a PostgreSQL database")
        db_file = Path(store.url.split(":///", 1)[1])
        media_dir = db_file.with_name(db_file.stem + "-media")
    path = Path(media_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    if store.setting("media_dir") != str(path):
        store.set_setting("media_dir", str(path))
    return path


def import_runs(store: Store, runs: list[tuple[Path, str | None]], media_dir: Path) -> ImportReport:
    from mova_eval.results import ItemLog, read_run_json

    report = ImportReport()
    for run_dir, label in runs:
        run_dir = Path(run_dir)
        if not (run_dir / "run.json").is_file():
            raise MovaEvalError(f"{run_dir}: not a run directory (no run.json)")
        log = read_run_json(run_dir)
        model = label or _label(log.generator)
        rows = ItemLog(run_dir).load().records()
        if not rows:
            raise MovaEvalError(f"{run_dir}: items.parquet has no rows")
        suite_items = _suite_items(log.config)
        clips: dict[tuple[str, int], dict] = {}
        for r in rows:
            key = (str(r["item_id"]), int(r["seed"]) if r.get("seed") is not None else 0)
            if r.get("clip_path") and key not in clips:
                clips[key] = r
        for rid, gen in log.generation.items():  # clips whose metrics all failed still have a path here
            item_id, _, seed = rid.rpartition("#s")
            if gen.get("path") and (item_id, int(seed or 0)) not in clips:
                meta = next((r for r in rows if str(r["item_id"]) == item_id), {})
                clips[(item_id, int(seed or 0))] = {**meta, "item_id": item_id, "clip_path": gen["path"]}
        added = 0
        for (item_id, seed), r in sorted(clips.items()):
            it = suite_items.get(item_id)
            prov = log.generation.get(f"{item_id}#s{seed}", {})
            text = it.prompt if it is not None else str(prov.get("prompt", ""))
            try:
                added += _add_clip(store, media_dir, model=model, model_meta=dict(log.generator), run_id=log.run_id,
                                   item_id=item_id, suite=str(log.suite.get("name", "")),
                                   category=str(r.get("category") or (it.category if it else "")),
                                   language=str(r.get("language") or (it.language if it else "none")), text=text,
                                   path=Path(r["clip_path"]))
            except MovaEvalError as e:
                report.skipped.append(f"{model} {item_id}: {e}")
        report.models[model] = report.models.get(model, 0) + added
    return report


def _add_clip(store: Store, media_dir: Path, *, model: str, model_meta: dict, run_id: str, item_id: str, suite: str,
              category: str, language: str, text: str, path: Path) -> int:
    from mova_eval.media import file_sha256

    if not path.is_file():
        raise MovaEvalError(f"{path}: clip file is missing")
    src_hash = file_sha256(path)
    with store.read() as s:
        dup = s.scalar(select(Clip.id).join(Model, Clip.model_id == Model.id).join(Prompt, Clip.prompt_id == Prompt.id)
                       .where(Model.name == model, Prompt.item_id == item_id, Clip.source_hash == src_hash))
    if dup is not None:
        return 0
    clip_id = secrets.token_hex(16)
    info = playback.make_copy(path, media_dir / f"{clip_id}.mp4")
    with store.write() as s:
        m = store.get_or_create_model(s, model, {k: v for k, v in model_meta.items() if isinstance(v, (str, int, float))})
        p = store.get_or_create_prompt(s, item_id, suite=suite, category=category, language=language, text=text)
        s.add(Clip(id=clip_id, prompt_id=p.id, model_id=m.id, run_id=run_id, source_path=str(path),
                   playback_file=f"{clip_id}.mp4", **info))
    return 1


def add_gold(store: Store, media_dir: Path, n: int, *, seed: int = 0) -> int:
    """Make ``n`` gold pairs (one per prompt): one model's clip in sync vs. another model's clip of the same prompt
    with its sound delayed by 500 ms; the in-sync clip is the right answer.

    The two sides come from two different models so that a gold battle looks like a model battle frame by frame
    (two different pictures of one prompt); a twin of one clip would show identical frames on both sides, which a
    voter can detect without watching. Prompts that only one model has are skipped.
    """
    import random

    with store.read() as s:
        have = set(s.scalars(select(Clip.prompt_id).where(Clip.gold_group.is_not(None))))
        cands = s.execute(select(Clip.prompt_id, Clip.model_id, Clip.source_path).where(Clip.model_id.is_not(None))
                          .order_by(Clip.prompt_id, Clip.model_id, Clip.id)).all()
    by_prompt: dict[int, dict[int, str]] = {}
    for pid, mid, src in cands:
        if pid not in have and Path(src).is_file():
            by_prompt.setdefault(pid, {}).setdefault(mid, src)
    chosen = sorted((pid, srcs) for pid, srcs in by_prompt.items() if len(srcs) >= 2)
    rng = random.Random(seed)
    rng.shuffle(chosen)
    made = 0
    for pid, srcs in chosen[:n]:
        good_src, bad_src = rng.sample(sorted(srcs.values()), 2)
        group = secrets.token_hex(8)
        rows = []
        for role, src, shift in (("good", good_src, 0.0), ("bad", bad_src, playback.GOLD_SHIFT_S)):
            cid = secrets.token_hex(16)
            info = playback.make_copy(src, media_dir / f"{cid}.mp4", audio_shift_s=shift)
            rows.append(Clip(id=cid, prompt_id=pid, model_id=None, run_id="gold", source_path=str(src),
                             playback_file=f"{cid}.mp4", gold_group=group, gold_role=role, **info))
        with store.write() as s:
            s.add_all(rows)
        made += 1
    return made
