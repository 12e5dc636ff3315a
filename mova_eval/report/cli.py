"""The ``report`` and ``compare`` subcommands of ``mova-eval`` (registered by :mod:`mova_eval.cli`)."""
from __future__ import annotations

import argparse
import sys

REPORT_HELP = """\
Turn runs into tables, plots, LaTeX and HTML.

RUN is a run directory, a folder of runs, a glob ('runs/*') or an exported summary (.parquet/.json). Runs with the
same model label (generator.label) and suite are one model. Each cell is the mean ± half the 95 % CI width with
n/excluded; a missing value is "–" with the reason as a footnote.

Examples:
  mova-eval report runs/*                                     # leaderboard as Markdown on stdout
  mova-eval report runs/* --table mova_table4 --published mova_table4 --out report/
  mova-eval report runs/a runs/b --format html --format latex --out report/

With --out, writes report.<md|html|tex|csv|json> (LaTeX also as table.tex alone) and figures/*.png|svg;
without it, prints the one --format given (md by default) to stdout."""

COMPARE_HELP = """\
Compare a candidate run with a baseline, paired on shared items, and gate regressions for CI.

CANDIDATE and BASELINE are run directories, or a committed summary.parquet / report.json (then unpaired).
Without --gate every metric is listed and the exit status is 0; with a gate file:

  defaults: {min_n: 5, fail_if_unavailable: true}
  metrics:
    av_align: {max_regression: 0.01}         # absolute, in the metric's unit, direction-aware
    lufs: {max_regression: 5%}               # relative to the baseline value
    dnsmos_p808: {max_regression: 0.05, category: set3, require_significant: true}

Exit status: 0 pass, 1 regression (or too few items / unavailable metric), 2 usage or configuration error.
Writes Markdown to stdout (and --markdown FILE, and appends it to $GITHUB_STEP_SUMMARY when set) and JUnit XML
(--junit FILE, one test case per gated metric)."""


def cmd_report(args: argparse.Namespace) -> int:
    from mova_eval.errors import ConfigError
    from mova_eval.report import FORMATS, build_report, render_as, write_report

    formats = []
    for f in args.format or []:
        formats += [x.strip() for x in f.split(",") if x.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"unknown --format {', '.join(bad)}; known: {', '.join(FORMATS)}")
    if args.out is None:
        if len(formats) > 1:
            raise ConfigError("several --format values need --out DIR")
        fmt = formats[0] if formats else "md"
        report = build_report(args.runs, table=args.table, published=args.published, plots=fmt == "html",
                              sanity=args.sanity, arena_db=args.db)
        sys.stdout.write(render_as(report, fmt))
        return 0
    report = build_report(args.runs, table=args.table, published=args.published, plots=not args.no_plots,
                          sanity=args.sanity, arena_db=args.db)
    files = write_report(report, args.out, formats or FORMATS)
    for f in files:
        print(f)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from mova_eval.compare import run_compare

    outcome = run_compare(args.candidate, args.baseline, gate=args.gate, junit=args.junit,
                          markdown_out=args.markdown, n_boot=args.bootstrap)
    sys.stdout.write(outcome.markdown)
    return outcome.exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mova_eval.report.tables import LEADERBOARD, layout_names

    tables = [LEADERBOARD, *layout_names()]
    r = sub.add_parser("report", help="leaderboards, paper tables, plots, LaTeX and HTML from runs",
                       description=REPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories, folders of runs, globs or summary files")
    r.add_argument("--table", default=LEADERBOARD, choices=tables, help="the main table (default: leaderboard)")
    r.add_argument("--published", metavar="LAYOUT", choices=[t for t in tables if t != LEADERBOARD],
                   help="put the paper's rows from results/published/ beside ours (implies --table LAYOUT)")
    r.add_argument("--format", action="append", metavar="FMT",
                   help="md, html, latex, csv, json (repeat or comma-separate; default with --out: all)")
    r.add_argument("--out", metavar="DIR", help="write the files here (default: print one format to stdout)")
    r.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures")
    r.add_argument("--sanity", metavar="DIR", help="add the summary of a `mova-eval sanity` output folder (md, html, json)")
    r.add_argument("--db", metavar="DB", help="add metric–vote agreement from this arena database against the runs "
                                              "given (md, html, json; docs/agreement.md)")
    r.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="paired comparison with a baseline; a CI gate with JUnit output",
                       description=COMPARE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("candidate", metavar="CANDIDATE", help="run directory (or summary file) to check")
    c.add_argument("--baseline", required=True, metavar="BASELINE",
                   help="run directory, or a committed summary.parquet / report.json")
    c.add_argument("--gate", metavar="FILE", help="gate file (YAML): per-metric allowed regression, min n, …")
    c.add_argument("--junit", metavar="FILE", help="write JUnit XML here (needs --gate)")
    c.add_argument("--markdown", metavar="FILE", help="also write the Markdown summary here")
    c.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="paired bootstrap resamples (2000)")
    c.set_defaults(func=cmd_compare)
