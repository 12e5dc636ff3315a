"""A small ready-made pool: synthetic runs from differently configured generators, imported into a database.

Used by the tests, the load benchmark and anyone who wants to try the page without real model outputs. The
clips come from the real pipeline (``mova_eval.runner.run`` with the synthetic generator), so the import path is
exercised exactly as with real runs.
"""
from __future__ import annotations

from pathlib import Path

DEMO_MODELS = {
    "synth-wide": ["generator.width=160", "generator.height=96"],
    "synth-small": ["generator.width=128", "generator.height=96", "generator.fps=12"],
    "synth-tall": ["generator.width=96", "generator.height=128", "generator.sample_rate=22050"],
}


def make_runs(out: str | Path, *, models: int = 2, items: int = 3, duration: float = 2.0) -> list[tuple[Path, str]]:
    """Write ``models`` synthetic runs of the first ``items`` smoke prompts under ``out``; returns (dir, label)."""
    from mova_eval.config import compose
    from mova_eval.runner import run

    runs = []
    for label, extra in list(DEMO_MODELS.items())[:models]:
        run_dir = Path(out) / label
        if not (run_dir / "items.parquet").is_file():
            cfg = compose(["generator=synthetic", f"+generator.label={label}", "metrics.only=[loudness]",
                           f"output_dir={out}", f"run_id={label}", "runtime.progress=false", f"suite.limit={items}",
                           f"generator.duration={duration}", "runtime.bootstrap=10", *extra])
            run(cfg)
        runs.append((run_dir, label))
    return runs


def make_pool(db_url: str, work: str | Path, *, models: int = 2, items: int = 3, gold: int = 1,
              media_dir: str | Path | None = None) -> Path:
    """Runs + import (+ gold pairs) into ``db_url``; returns the media folder."""
    from mova_eval.arena.pool import add_gold, import_runs, media_dir_for
    from mova_eval.arena.storage import Store

    runs = make_runs(Path(work) / "runs", models=models, items=items)
    store = Store(db_url)
    media = media_dir_for(store, media_dir)
    import_runs(store, runs, media)
    if gold:
        add_gold(store, media, gold)
    store.dispose()
    return media
