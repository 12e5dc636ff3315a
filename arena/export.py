"""Data release: every vote (counted or not, with its flags) and the clip manifest, as Parquet and JSONL.

The board is a pure function of the vote table (``rating.leaderboard``), so ``mova-eval arena leaderboard
--from DIR`` recomputes exactly the board that the live database gives.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from mova_eval.arena.storage import Battle, Clip, Model, Prompt, Store, Vote
from mova_eval.cache import atomic_write_bytes, atomic_write_text

EXPORT_VERSION = 1
VOTE_COLUMNS = ["id", "battle_id", "kind", "choice", "model_a", "model_b", "item_id", "category", "language",
                "pair_prob", "gold_answer", "heard_a_s", "heard_b_s", "elapsed_s", "tags_a", "tags_b", "voter",
                "ip_hash", "flags", "created_at", "clip_a", "clip_b", "prompt_prob", "side_prob", "sampler"]


def load_votes(store: Store) -> pd.DataFrame:
    with store.read() as s:
        rows = s.execute(select(Vote, Battle.clip_a, Battle.clip_b, Battle.prompt_prob, Battle.side_prob,
                                Battle.sampler).join(Battle, Vote.battle_id == Battle.id).order_by(Vote.id)).all()
    recs = []
    for v, ca, cb, pp, sp, sm in rows:
        recs.append({"id": v.id, "battle_id": v.battle_id, "kind": v.kind, "choice": v.choice, "model_a": v.model_a,
                     "model_b": v.model_b, "item_id": v.item_id, "category": v.category, "language": v.language,
                     "pair_prob": v.pair_prob, "gold_answer": v.gold_answer, "heard_a_s": v.heard_a_s,
                     "heard_b_s": v.heard_b_s, "elapsed_s": v.elapsed_s, "tags_a": list(v.tags_a or []),
                     "tags_b": list(v.tags_b or []), "voter": v.voter, "ip_hash": v.ip_hash,
                     "flags": list(v.flags or []), "created_at": v.created_at, "clip_a": ca, "clip_b": cb,
                     "prompt_prob": pp, "side_prob": sp, "sampler": sm})
    return pd.DataFrame(recs, columns=VOTE_COLUMNS)


def load_manifest(store: Store) -> pd.DataFrame:
    with store.read() as s:
        rows = s.execute(select(Clip, Prompt, Model.name).join(Prompt, Clip.prompt_id == Prompt.id)
                         .outerjoin(Model, Clip.model_id == Model.id).order_by(Clip.id)).all()
    return pd.DataFrame([{"clip_id": c.id, "model": name, "item_id": p.item_id, "suite": p.suite,
                          "category": p.category, "language": p.language, "prompt": p.text, "run_id": c.run_id,
                          "source_sha256": c.source_hash, "playback_file": c.playback_file,
                          "playback_sha256": c.playback_sha256, "duration": c.duration, "width": c.width,
                          "height": c.height, "fps": c.fps, "loudness_in": c.loudness_in, "gold_group": c.gold_group,
                          "gold_role": c.gold_role} for c, p, name in rows])


def _parquet(frame: pd.DataFrame, path: Path) -> None:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def _jsonl(frame: pd.DataFrame, path: Path) -> None:
    lines = [json.dumps(r, ensure_ascii=False, default=str) for r in frame.to_dict("records")]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def export(store: Store, out: str | Path) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    votes = load_votes(store)
    manifest = load_manifest(store)
    _parquet(votes, out / "votes.parquet")
    _jsonl(votes, out / "votes.jsonl")
    _parquet(manifest, out / "clips.parquet")
    _jsonl(manifest, out / "clips.jsonl")
    from mova_eval.results import now

    meta = {"export_version": EXPORT_VERSION, "exported": now(), "votes": len(votes), "clips": len(manifest),
            "files": ["votes.parquet", "votes.jsonl", "clips.parquet", "clips.jsonl"],
            "reproduce": f"mova-eval arena leaderboard --from {out}",
            "contents": "every vote, counted or not; `flags` lists why a vote is excluded; voter and ip_hash are "
                        "salted hashes (no raw IP); gold votes have kind=gold"}
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2))
    return meta


def read_export(folder: str | Path) -> pd.DataFrame:
    folder = Path(folder)
    if (folder / "votes.parquet").is_file():
        frame = pd.read_parquet(folder / "votes.parquet")
    elif (folder / "votes.jsonl").is_file():
        frame = pd.read_json(folder / "votes.jsonl", lines=True)
    else:
        from mova_eval.errors import MovaEvalError

        raise MovaEvalError(f"{folder}: no votes.parquet or votes.jsonl (not an arena export)")
    for col in ("flags", "tags_a", "tags_b"):
        frame[col] = frame[col].map(lambda x: [] if x is None else list(x))
    return frame
