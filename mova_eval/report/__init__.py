"""From runs to a publishable leaderboard: ``mova-eval report RUN_DIR|GLOB ... [--table NAME] [--format ...]``.

:func:`build_report` reads run directories (or exported summaries), groups them into models by label and suite
(:mod:`mova_eval.report.data`), builds the main table — the leaderboard, or a named layout from
``mova_eval/report/layouts/*.yaml`` such as ``mova_table4`` with the paper's rows beside ours — plus per-set and
per-language breakdowns and figures; :func:`write_report` renders it as Markdown, HTML, LaTeX, CSV and JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from mova_eval.errors import ConfigError
from mova_eval.report.data import ReportData, load_report_data
from mova_eval.report.tables import LEADERBOARD, Table, breakdowns, layout_names, layout_table, leaderboard

if TYPE_CHECKING:
    from mova_eval.report.plots import Figure

FORMATS = ("md", "html", "latex", "csv", "json")
EXTENSIONS = {"md": "md", "html": "html", "latex": "tex", "csv": "csv", "json": "json"}


@dataclass
class Report:
    title: str
    version: str
    sources: list[Path]
    data: ReportData
    main: Table
    breakdowns: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)  # when made
    figure_files: list[tuple[str, str]] = field(default_factory=list)  # (title, relative path) for Markdown
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, Markdown): sanity, arena agreement


def extra_sections(sources: list[Path], *, sanity: str | Path | None = None, arena_db: str | None = None
                   ) -> list[tuple[str, str]]:
    """Sections from ``mova-eval sanity`` (its summary table) and ``mova-eval arena agreement`` (computed from the
    arena database against the report's run directories)."""
    out: list[tuple[str, str]] = []
    if sanity is not None:
        from mova_eval.sanity import load_result

        load_result(sanity)  # a clear error when the folder is not a sanity output
        md = (Path(sanity) / "summary.md").read_text(encoding="utf-8")
        out.append(("Metric sanity (defect battery)", md.split("\n", 1)[1].strip() +
                    f"\n\nCards per metric: `{Path(sanity) / 'cards'}`."))
    if arena_db is not None:
        from mova_eval.arena import agreement
        from mova_eval.arena.export import load_manifest, load_votes
        from mova_eval.arena.storage import Store

        store = Store(arena_db)
        runs = [s for s in sources if Path(s).is_dir() and (Path(s) / "run.json").is_file()]
        res = agreement.agreement(load_votes(store), load_manifest(store), runs)
        store.dispose()
        out.append(("Agreement with the arena's votes", agreement.to_markdown(res).split("\n", 1)[1].strip()))
    return out


def build_report(paths: Iterable[str | Path], *, table: str = LEADERBOARD, published: str | None = None,
                 plots: bool = True, sanity: str | Path | None = None, arena_db: str | None = None) -> Report:
    """Read the runs and build every table (and, with ``plots``, the figures)."""
    from mova_eval import __version__
    from mova_eval.summary import resolve_sources

    paths = list(paths)
    if published and table == LEADERBOARD:
        table = published
    if published and published != table:
        raise ConfigError(f"--published {published} needs --table {published} (the published rows are in that "
                          f"layout's columns)")
    if table != LEADERBOARD and table not in layout_names():
        raise ConfigError(f"unknown table {table!r}; known: {', '.join([LEADERBOARD, *layout_names()])}")
    sources = resolve_sources(paths)
    data = load_report_data(sources)
    if not data.models:
        raise ConfigError(f"no runs found in {', '.join(map(str, paths))}")
    main = leaderboard(data) if table == LEADERBOARD else layout_table(data, table, published=bool(published))
    metrics = list(dict.fromkeys(c.metric for c in main.columns))
    report = Report(title=f"mova-eval report: {main.title}", version=__version__, sources=sources, data=data, main=main,
                    breakdowns=breakdowns(data, metrics), sections=extra_sections(sources, sanity=sanity,
                                                                                   arena_db=arena_db))
    if plots:
        from mova_eval.report.plots import all_figures

        report.figures = all_figures(main, report.breakdowns, per_group=table == LEADERBOARD)
    return report


def render_as(report: Report, fmt: str) -> str:
    from mova_eval.report import html
    from mova_eval.report import render as r

    if fmt == "md":
        return r.report_markdown(report)
    if fmt == "html":
        return html.report_html(report)
    if fmt == "latex":
        return r.report_latex(report)
    if fmt == "csv":
        return r.report_csv(report)
    if fmt == "json":
        return r.report_json(report)
    raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def write_report(report: Report, out: str | Path, formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write ``report.<ext>`` for each format (plus ``table.tex`` alone for LaTeX) and the figures as
    ``figures/*.png|svg`` into ``out``; returns the files written."""
    from mova_eval.cache import atomic_write_text
    from mova_eval.report.render import table_latex

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if report.figures:
        from mova_eval.report.plots import write_figures

        written += write_figures(report.figures, out / "figures")
        report.figure_files = [(f.title, f"figures/{f.name}.png") for f in report.figures]
    for fmt in formats:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        path = out / f"report.{EXTENSIONS[fmt]}"
        atomic_write_text(path, render_as(report, fmt))
        written.append(path)
        if fmt == "latex":
            atomic_write_text(out / "table.tex", table_latex(report.main))
            written.append(out / "table.tex")
    return written


__all__ = ["Report", "build_report", "write_report", "render_as", "FORMATS", "layout_names"]
