"""The `mova-eval` command: run, ls, validate, weights (and the subcommands that later work adds)."""
from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeAlias

from mova_eval.errors import MovaEvalError

if TYPE_CHECKING:
    from mova_eval.generators.base import Problem
    from mova_eval.runner import RunOutcome
    from mova_eval.summary import SummaryRecord

#: what a subcommand group contributed by another module registers itself with
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

RUN_HELP = """\
Run a suite through a generator, score the clips, and write
OUTPUT_DIR/RUN_ID/{{run.json,items.parquet,features.parquet,summary.parquet}}.

Overrides use Hydra syntax (key=value, group=option). Examples:
  mova-eval run                                             # smoke suite, synthetic generator, every metric that can run
  mova-eval run suite=verse suite.path=verse_bench_prompts.json generator=directory generator.path=DIR
  mova-eval run metrics.only=[loudness] output_dir=runs run_id=my-run   # re-run the same run_id to resume
  mova-eval run runtime.device=cuda runtime.workers=4 suite.limit=20
  mova-eval run generator=directory generator.path=clips/MOVA-360p   # results labelled MOVA-360p (+generator.label=…)
  mova-eval run suite=verse suite.path=FILE generator=directory generator.path=DIR seeds=all   # every clip per item

seeds: a list (seeds=[0,1,2]: that many clips per item; for generator=directory the k-th file of each item), one
number, or seeds=all: every clip a clip folder holds for each item, as the MOVA toolkit scores every .mp4 (items
may then have different numbers of samples; run.json `samples` lists them; generators that make clips refuse it).

Exit status: 0 complete; 1 a rule fired (the summary says which): a metric in metrics.only cannot run here (unless
runtime.allow_unavailable=true), a metric has no finite value at all, or the fraction of item rows with errors
passed runtime.fail_on_error; 2 configuration or usage error; 130 interrupted (re-run the same run_id to resume).

Config groups and their options:
{groups}

Default configuration:
{default}"""


def _print_summary(outcome: RunOutcome) -> None:
    """The console summary: every metric's `all` value and, beside it, the value in the protocol of the paper that
    uses the metric (MOVA Table 4: DNSMOS and LSE on Verse-Bench set3); the note names the exclusions by reason."""
    from mova_eval.report.tables import paper_protocols
    from mova_eval.summary import ALL, read_records

    log = outcome.log
    print(f"\nrun {log.run_id} ({log.status}) → {outcome.run_dir}")
    records = read_records(outcome.run_dir)
    index = {(r.metric, r.category, r.language): r for r in records}
    rows = sorted((r for r in records if r.category == ALL and r.language == ALL),
                  key=lambda r: (r.family, r.metric, r.model))
    protocols = paper_protocols(str(log.suite.get("name", "")))

    def fmt(r: SummaryRecord) -> tuple[str, str]:
        mean = "nan" if not r.has_value else f"{r.mean:.4g}"
        ci = "" if math.isnan(r.ci_low) else f"[{r.ci_low:.4g}, {r.ci_high:.4g}]"
        return mean, ci

    if rows:
        mw = max(16, *(len(r.metric) + 2 for r in rows))
        gw = max(12, *(len(r.model) for r in rows))
        lines = []
        for r in rows:
            arrow = {"higher": "↑", "lower": "↓"}.get(r.direction, " ")
            mean, ci = fmt(r)
            paper = ""
            if r.metric in protocols:
                cat = protocols[r.metric][0]
                p = index.get((r.metric, cat, ALL))
                paper = f"{cat}: " + (" ".join(fmt(p)) if p is not None else "no such set in this run")
            lines.append((f"{r.metric + ' ' + arrow:<{mw}} {r.model:<{gw}} {mean:>10} {ci:>21} {r.n:>5} "
                          f"{r.n_excluded:>5}", paper, r.note))
        pw = max([len("paper protocol")] + [len(p) for _, p, _ in lines])
        header = f"{'metric':<{mw}} {'model':<{gw}} {'all':>10} {'95% CI':>21} {'n':>5} {'excl':>5}"
        print(f"{header}  {'paper protocol':<{pw}}  note")
        print("-" * (len(header) + pw + 8))
        for head, paper, note in lines:
            print(f"{head}  {paper:<{pw}}  {note}".rstrip())
        shown = {m: v for m, v in protocols.items() if any(r.metric == m for r in rows)}
        by_source: dict[tuple[str, str], list[str]] = {}
        for m, (cat, title) in shown.items():
            by_source.setdefault((cat, title), []).append(m)
        for (cat, title), ms in by_source.items():
            print(f"paper protocol: {', '.join(ms)} on {cat}, as in {title}")
    unavailable = [m for m in log.metrics if not m.available]
    if unavailable:
        print("\nnot run here:")
        for st in unavailable:
            print(f"  {st.name}: {st.reason}" + (f"  → {st.command}" if st.command else ""))
    c = log.counts
    print(f"\n{c.get('rows', 0)} rows, {c.get('errors', 0)} with errors; {log.timings.get('total', 0):.1f} s")
    if log.failures:
        print(f"\nrun {log.status}: {len(log.failures)} rule(s) fired (exit status 1):")
        for f in log.failures:
            print(f"  [{f.rule}] {f.detail}")


def _announce_label(cfg: dict[str, Any]) -> None:
    """Say which label the results will carry when the generator chose it (a directory run: the folder's name)."""
    from mova_eval.runner import model_label

    gcfg = cfg.get("generator") or {}
    if gcfg.get("label") or "name" not in gcfg:
        return
    label, why = model_label(gcfg), None
    from mova_eval.registry import get_generator_class

    default = get_generator_class(gcfg["name"]).default_label(gcfg)
    if default is not None:
        why = default[1]
    if why:
        print(f"mova-eval: results are labelled {label!r} ({why}); +generator.label=NAME sets another label",
              file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from mova_eval.config import compose
    from mova_eval.runner import run

    cfg = compose(args.overrides)
    _announce_label(cfg)
    outcome = run(cfg)
    _print_summary(outcome)
    return 0 if outcome.log.status == "complete" else 1


def cmd_merge(args: argparse.Namespace) -> int:
    from mova_eval.merge import merge_runs

    outcome = merge_runs(args.run_dirs, args.out)
    _print_summary(outcome)
    return 0 if outcome.log.status == "complete" else 1


MERGE_HELP = """\
Join the run directories of static shards into one run directory (run.json, items.parquet, features.parquet,
summary.parquet) whose summary is the one a single process would have written for the whole suite.

Each shard is an ordinary `mova-eval run ... suite.shard=I/N` (0-based I; e.g. the tasks of a Slurm array, each
with its own run_id). merge refuses, naming the directories: shards whose configurations differ in anything but
suite.shard, run_id, output_dir and runtime (runtime.bootstrap must agree), a shard index missing or given twice,
an unfinished shard, requests (item x seed) missing or in two shards, and an --out that already holds a run.
Set-level metrics (FVD, FAD, IS) are recomputed from the features cache named by the shards' features.parquet, so
the cache (runtime.cache_dir / $MOVA_EVAL_CACHE) must be shared storage, readable here. See docs/scaling.md.

Example:
  mova-eval merge runs/exp-shard0 runs/exp-shard1 --out runs/exp

Exit status: 0 complete; 1 a run rule fired (as for `mova-eval run`); 2 the shards cannot be merged."""


def cmd_ls(args: argparse.Namespace) -> int:
    from mova_eval.config import compose, group_options
    from mova_eval.registry import generator_classes, get_metric_class, metric_classes

    if args.overrides:
        compose(args.overrides, require_all=False)  # registers the plugins=[package.module:ClassName] it names
    if getattr(args, "metric", None):
        from mova_eval import cards

        print(cards.render(get_metric_class(args.metric)))
        return 0

    from mova_eval import weights

    ok, bad = "✓", "✗"
    print("suites:")
    for name in group_options("suite"):
        cfg = compose([f"suite={name}"], require_all=False)["suite"]
        note = "embedded" if cfg.get("loader") == "smoke" else "needs suite.path=FILE or network (Hugging Face hub)"
        print(f"  {ok} {name:<14} {note}")
    print("generators:")
    confs = set(group_options("generator"))
    for name, gcls in generator_classes().items():
        cfg = compose([f"generator={name}"], require_all=False)["generator"] if name in confs else {"name": name}
        av = gcls.availability(cfg)
        line = f"  {ok if av.ok else bad} {name:<14}"
        if not av.ok:
            line += f" {av.reason}" + (f"  → {av.command}" if av.command else "")
        print(line)
    print("metrics:")
    for name, mcls in metric_classes().items():
        av = mcls.availability()
        outs = ", ".join(o.name for o in mcls.info.outputs)
        line = f"  {ok if av.ok else bad} {name:<14} [{outs}]"
        if not av.ok:
            line += f"  {av.reason}" + (f"  → {av.command}" if av.command else "")
        nc = [w for w in mcls.info.weights if weights.get(w).non_commercial]
        if nc:
            line += "  [non-commercial weights: " + "; ".join(f"{w}: {weights.get(w).license}" for w in nc) + "]"
        print(line)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from mova_eval.config import compose
    from mova_eval.registry import get_generator_class
    from mova_eval.suites import load_suite, summarize

    cfg = compose(args.overrides)
    problems: list[Problem] = []
    suite = load_suite(cfg["suite"])
    s = summarize(suite)
    print(f"suite {suite.name} (v{suite.version}) from {suite.source}: {s['items']} items, {s['with_speech']} with speech")
    for cat, c in s["categories"].items():
        print(f"  {cat:<12} {c['items']:>4} items  (speech en {c['en']}, zh {c['zh']}, none {c['none']})")
    if any(o.lstrip("~+").split("=")[0].split(".")[0] == "generator" for o in args.overrides):
        gcls = get_generator_class(cfg["generator"]["name"])
        from mova_eval.context import RunContext

        gen = gcls(cfg["generator"], context=RunContext.from_config(cfg.get("runtime", {})))
        from mova_eval.errors import ConfigError
        from mova_eval.generators.base import Problem
        from mova_eval.runner import SEEDS_ALL, media_audio_track, parse_seeds

        seeds = parse_seeds(cfg.get("seeds"))
        if seeds == SEEDS_ALL:
            try:
                gen.list_samples(suite)  # a generator that makes clips has no samples to list
            except ConfigError as e:
                problems.append(Problem("config", str(e)))
        problems += gen.validate(suite, seeds=seeds, decode=args.decode,
                                 audio_track=media_audio_track(cfg.get("media")))
    notes = [p for p in problems if p.kind == "note"]
    problems = [p for p in problems if p.kind != "note"]
    if notes:
        print(f"\n{len(notes)} note(s) (these clips score, but look at them):")
        for p in notes:
            print(f"  - {p}")
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("\nno problems found")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from mova_eval import weights

    if args.action == "list":
        for name, spec in weights.registry().items():
            status, detail = weights.verify(name) if args.check else ("", "")
            size = f"{spec.size / 1e6:.1f} MB" if spec.size else "size ?"
            nc = " — NON-COMMERCIAL" if spec.non_commercial else ""
            print(f"{name}\n  file: {spec.filename} ({size}); licence: {spec.license}{nc}; used by: "
                  f"{', '.join(spec.used_by)}")
            print(f"  url: {spec.urls[0]}" + (f" (+{len(spec.urls) - 1} mirror)" if len(spec.urls) > 1 else ""))
            for pin in spec.pins():
                print(f"  pin: {pin.kind} {pin.value} (published: {pin.source})")
            recorded = weights.local_pins().get(name)
            if spec.sha256:
                tofu = None
            elif recorded:
                tofu = f"{recorded} (recorded by this machine's first fetch" + \
                       (f" after the published {' and '.join(p.kind for p in spec.pins())} matched)" if spec.pins()
                        else "; trust on first use)")
            elif spec.pins():
                tofu = "not yet recorded — no full sha256 is published; the first fetch records it once the " \
                       f"published {' and '.join(p.kind for p in spec.pins())} matched"
            else:
                tofu = "none published — trust on first use: the first fetch records the hash later checks compare to"
            if tofu is not None:
                print(f"  pin: sha256 {tofu}")
            if status:
                print(f"  status: {status} {detail}")
        if not weights.registry():
            print("(no checkpoints registered)")
        return 0
    if args.action == "fetch":
        for name in args.names:
            path = weights.fetch(name, force=args.force)
            print(f"{name}: {path}")
        return 0
    if args.action == "verify":
        names = args.names or list(weights.registry())
        worst = 0
        for name in names:
            status, detail = weights.verify(name)
            print(f"{status:<9} {name}  {detail}")
            worst = max(worst, {"ok": 0, "unpinned": 0, "missing": 0, "mismatch": 1}[status])
        return worst
    return 2


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    from mova_eval.config import GROUPS, group_options

    p = argparse.ArgumentParser(prog="mova-eval", description="Evaluate video+audio generators: run suites, score "
                                "clips, publish leaderboards.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    groups = "\n".join(f"  {g:<10} {', '.join(group_options(g))}" for g in GROUPS)
    r = sub.add_parser("run", help="run a suite and score it", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=RUN_HELP.format(groups=groups, default=_default_yaml() if _wants_help(argv)
                                                   else "  (shown by `mova-eval run --help`)"))
    r.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. suite=verse metrics.only=[loudness]")
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("ls", help="list suites, generators and metrics, and whether each can run here")
    ls.add_argument("--metric", metavar="NAME", help="print one metric's card: unit, range, direction, scale, the "
                    "published tables that use it (and which variant), reference values, weights and licence")
    ls.add_argument("overrides", nargs="*", help="Hydra overrides; plugins=[package.module:ClassName,...] lists "
                    "plug-in metrics and generators too")
    ls.set_defaults(func=cmd_ls)

    v = sub.add_parser("validate", help="check a suite, and what a generator makes of it, without generating or scoring",
                       description="Reports the suite, then (with generator=NAME) the generator's problems: whether it "
                                   "can run here, items it cannot serve, a clip folder's missing/unused/bad files (decoding each clip "
                                   "as a run would, unless --no-decode or the folder holds 1,000 clips or more).\n"
                                   "Examples:\n  mova-eval validate suite=verse suite.path=FILE\n"
                                   "  mova-eval validate suite=smoke generator=ltx2\n"
                                   "  mova-eval validate suite=verse suite.path=FILE generator=directory generator.path=DIR",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("overrides", nargs="*", help="Hydra overrides selecting the suite (and generator=NAME)")
    dec = v.add_mutually_exclusive_group()
    dec.add_argument("--decode", dest="decode", action="store_true", default=None,
                     help="decode every clip of generator=directory as a run would (finds corrupt middles, 1x1 "
                          "frames, streams without packets, NaN samples; notes clipping and many channels); the "
                          "default for folders of fewer than 1,000 clips")
    dec.add_argument("--no-decode", dest="decode", action="store_false",
                     help="only read headers and packets (fast, for large folders)")
    v.set_defaults(func=cmd_validate)

    mg = sub.add_parser("merge", help="join static shards (suite.shard=I/N) into one run directory",
                        description=MERGE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    mg.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="the shards' run directories (every I of N once)")
    mg.add_argument("--out", required=True, metavar="DIR", help="the merged run directory to create (its name is "
                    "the merged run_id)")
    mg.set_defaults(func=cmd_merge)

    w = sub.add_parser("weights", help="the checkpoint registry: list, fetch, verify")
    wsub = w.add_subparsers(dest="action", metavar="ACTION")
    wsub.required = True
    wl = wsub.add_parser("list", help="every registered checkpoint with URL, size, licence and its pins: a published "
                         "sha256, sha256 prefix (torch hub file names) or md5, else trust on first use")
    wl.add_argument("--check", action="store_true", help="also hash the files present")
    wf = wsub.add_parser("fetch", help="download checkpoints (resumable, checksum-verified)")
    wf.add_argument("names", nargs="+", metavar="NAME")
    wf.add_argument("--force", action="store_true", help="download again even if a file is present")
    wv = wsub.add_parser("verify", help="hash present checkpoints and compare with their pins (published sha256, "
                         "sha256 prefix or md5, and the sha256 recorded by the first fetch)")
    wv.add_argument("names", nargs="*", metavar="NAME")
    w.set_defaults(func=cmd_weights)

    for extend in _extensions():
        extend(sub)
    return p


def _extensions() -> list[Callable[[Subparsers], None]]:
    """Subcommand groups contributed by other parts of the package (arena, reference statistics…)."""
    out: list[Callable[[Subparsers], None]] = []
    for mod_name in ("mova_eval.arena.cli", "mova_eval.reference_cli", "mova_eval.sanity_cli", "mova_eval.report.cli"):
        try:
            mod = __import__(mod_name, fromlist=["register"])
        except ImportError:
            continue
        out.append(mod.register)
    return out


def _wants_help(argv: Sequence[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else list(argv)
    return "-h" in args or "--help" in args


def _default_yaml() -> str:
    try:
        from omegaconf import OmegaConf

        from mova_eval.config import compose

        return "  " + OmegaConf.to_yaml(compose([])).replace("\n", "\n  ")
    except Exception as e:  # help must never crash
        return f"  (could not compose: {e})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MovaEvalError as e:
        print(f"mova-eval: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mova-eval: interrupted; re-run with the same run_id to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
