"""Report figures with matplotlib (Agg backend, no display): per-metric bars with 95 % CI whiskers across models,
per-set grouped bars, and a metric × model heat map of ranks. Each figure is written as PNG and SVG; the HTML
report embeds the PNG bytes inline.

SVG output is made reproducible (no date, a fixed hash salt) so that re-running a report on the same runs gives the
same files.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from mova_eval.errors import MissingDependencyError
from mova_eval.report.tables import Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

ARROW = {"higher": "↑", "lower": "↓"}


@dataclass(frozen=True)
class Figure:
    name: str        # file stem
    title: str
    png: bytes
    svg: bytes


def _plt() -> ModuleType:
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MissingDependencyError("report plots", "matplotlib", "report") from e
    plt.rcParams["svg.hashsalt"] = "mova-eval"
    return plt


def _save(fig: MplFigure, name: str, title: str) -> Figure:
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Figure(name, title, png.getvalue(), svg.getvalue())


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def metric_bars(table: Table) -> list[Figure]:
    """One bar chart per column: a bar per row with a value, whiskers = the 95 % CI where there is one (published
    rows are hatched and have none)."""
    plt = _plt()
    out = []
    for col in table.columns:
        rows = [r for r in table.rows if r.cells.get(col.key) is not None and r.cells[col.key].has_value]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(max(3.5, 0.7 * len(rows) + 1.5), 3.2))
        means = [r.cells[col.key].mean for r in rows]
        lo = [m - r.cells[col.key].ci_low if r.cells[col.key].has_ci else 0 for m, r in zip(means, rows)]
        hi = [r.cells[col.key].ci_high - m if r.cells[col.key].has_ci else 0 for m, r in zip(means, rows)]
        labels = [f"{r.label}\n({r.group})" if len({x.group for x in rows}) > 1 else r.label for r in rows]
        bars = ax.bar(range(len(rows)), means, yerr=[lo, hi], capsize=4, color="#4c78a8", edgecolor="#1f3b57")
        for b, r in zip(bars, rows):
            if r.published:
                b.set_hatch("//")
                b.set_facecolor("#c6d4e3")
        ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{col.header} {ARROW.get(col.direction, '')}".strip() + (f" ({col.protocol})" if col.protocol
                                                                            else ""), fontsize=9)
        if col.unit:
            ax.set_ylabel(col.unit)
        ax.axhline(0, color="#888", lw=0.6)
        ax.grid(axis="y", alpha=0.3)
        out.append(_save(fig, f"bars_{_safe(col.key)}", f"{col.header}: mean with 95 % CI per model"))
    return out


def set_bars(breakdown: Table) -> Figure | None:
    """Grouped bars: one group per category (set) of a metric, one bar per model, CI whiskers."""
    plt = _plt()
    cats = [c.key for c in breakdown.columns if c.key != "all"]
    rows = breakdown.rows
    if not cats or not rows:
        return None
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(cats) + 1.5), 3.2))
    for i, r in enumerate(rows):
        xs, ys, lo, hi = [], [], [], []
        for j, c in enumerate(cats):
            cell = r.cells.get(c)
            if cell is None or not cell.has_value:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(cell.mean)
            lo.append(cell.mean - cell.ci_low if cell.has_ci else 0)
            hi.append(cell.ci_high - cell.mean if cell.has_ci else 0)
        ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=3, label=f"{r.label} ({r.group})")
    ax.set_xticks(range(len(cats)), cats, fontsize=8)
    metric = breakdown.columns[0].metric
    ax.set_title(f"{metric} {ARROW.get(breakdown.columns[0].direction, '')} per set".replace("  ", " "), fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, f"sets_{_safe(metric)}", f"{metric}: per-set means with 95 % CI")


def rank_heatmap(table: Table, *, per_group: bool = False) -> Figure | None:
    """Metric × model ranks (1 = best in the column by its direction; ties share a rank), within each row group
    when ``per_group`` (a leaderboard's suites are not compared with each other)."""
    plt = _plt()
    cols = [c for c in table.columns if c.direction in ("higher", "lower")]
    rows = table.rows
    if not cols or len(rows) < 2:
        return None
    import numpy as np

    ranks = np.full((len(cols), len(rows)), np.nan)
    for i, col in enumerate(cols):
        for g in (dict.fromkeys(r.group for r in rows) if per_group else [None]):
            vals = [(j, r.cells[col.key].mean) for j, r in enumerate(rows)
                    if (g is None or r.group == g) and r.cells.get(col.key) is not None and r.cells[col.key].has_value]
            ordered = sorted({v for _, v in vals}, reverse=col.direction == "higher")
            for j, v in vals:
                ranks[i, j] = ordered.index(v) + 1
    if not np.isfinite(ranks).any():
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), max(2.5, 0.4 * len(cols) + 1.2)))
    im = ax.imshow(np.ma.masked_invalid(ranks), cmap="viridis_r", aspect="auto")
    groups = len({r.group for r in rows}) > 1 and per_group
    ax.set_xticks(range(len(rows)), [r.label + (" (pub.)" if r.published else "") + (f"\n{r.group}" if groups else "")
                                     for r in rows],
                  rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(cols)), [f"{c.header} {ARROW[c.direction]}" for c in cols], fontsize=8)
    for i in range(len(cols)):
        for j in range(len(rows)):
            txt = "–" if math.isnan(ranks[i, j]) else str(int(ranks[i, j]))
            ax.text(j, i, txt, ha="center", va="center", fontsize=8, color="white" if txt != "–" else "#555")
    ax.set_title("rank per metric (1 = best)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    return _save(fig, "ranks", "Rank of each model per metric (1 = best)")


def all_figures(main: Table, breakdowns: list[Table], *, per_group: bool = False) -> list[Figure]:
    figs = metric_bars(main)
    for b in breakdowns:
        if b.name.endswith("-by-category"):
            f = set_bars(b)
            if f is not None:
                figs.append(f)
    h = rank_heatmap(main, per_group=per_group)
    if h is not None:
        figs.append(h)
    return figs


def write_figures(figs: list[Figure], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for f in figs:
        for ext, data in (("png", f.png), ("svg", f.svg)):
            p = folder / f"{f.name}.{ext}"
            p.write_bytes(data)
            out.append(p)
    return out
