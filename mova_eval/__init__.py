"""mova-eval: one harness to generate, score and rank video+audio generation.

Public API: :func:`load_runs` (run directories → pandas), :func:`load_features` (their set-level feature records),
:func:`load_summary` (summary rows of runs or exported summaries: model × metric × category × language, with
exclusions by reason), :func:`run` (a composed config → run directory).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # the functions import their modules when called: `import mova_eval` stays light
    from pathlib import Path

    import pandas as pd

    from mova_eval.runner import RunOutcome

__version__ = "0.1.0"


def load_runs(path: str | Path) -> pd.DataFrame:
    """Every item row of one run directory, or of all runs below a folder, as a pandas DataFrame."""
    from mova_eval.results import load_runs as _load

    return _load(path)


def load_features(path: str | Path) -> pd.DataFrame:
    """The features.parquet rows (set-level metrics' per-item records) of one run directory or all runs below."""
    from mova_eval.results import load_features as _load

    return _load(path)


def load_summary(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Summary rows (``summary.parquet``) of run directories, folders of runs, globs or exported summary files."""
    from mova_eval.summary import load_summary as _load

    return _load(paths)


def run(overrides: Iterable[str] = ()) -> RunOutcome:
    """Compose the packaged config with Hydra-style overrides and execute the run; returns a RunOutcome."""
    from mova_eval.config import compose
    from mova_eval.runner import run as _run

    return _run(compose(list(overrides)))


__all__ = ["load_runs", "load_features", "load_summary", "run", "__version__"]
