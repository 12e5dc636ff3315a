"""`mova-eval sanity`: the defect battery and sensitivity cards (registered by mova_eval.cli)."""
from __future__ import annotations

import argparse

HELP = """\
Apply controlled defects (audio offset, swapped or muted audio, noise at an SNR, time stretch, frozen or shuffled
frames, resolution drop, recompression, wrong-language speech) to the suite's clean clips, score only the defected
variants, and write per metric a sensitivity card (Markdown + HTML + plots) and one summary table to --out.

Overrides use the same Hydra syntax as `mova-eval run`. Examples:
  mova-eval sanity                                            # smoke suite, synthetic clips, every CPU metric
  mova-eval sanity metrics.only=[av_align,wer] --defects audio_offset,noise --out sanity-out
  mova-eval sanity suite=verse suite.path=FILE generator=directory generator.path=DIR --quick
  mova-eval sanity --strength audio_offset=-300,300 --strength noise=5

Verdicts compare each change with what the metric declares it should detect
(mova_eval/data/sanity_expectations.json, or a metric class's `sanity_expectations`); docs/sanity.md explains them."""


def _strength(text: str) -> tuple[str, list[float]]:
    kind, _, values = text.partition("=")
    try:
        return kind.strip(), [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND=V1,V2,…") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("sanity", help="defect battery: does each metric detect what it claims?",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. metrics.only=[av_align] suite=… generator=…")
    s.add_argument("--out", default="sanity", help="output folder (default: ./sanity)")
    s.add_argument("--defects", default=None, help="comma-separated defect kinds (default: all)")
    s.add_argument("--quick", action="store_true", help="one or two strengths per defect instead of the full sweep")
    s.add_argument("--strength", action="append", type=_strength, default=[], metavar="KIND=V1,V2",
                   help="strengths for one defect kind (repeatable)")
    s.add_argument("--seed", type=int, default=0, help="seed of the defects' random streams")
    s.set_defaults(func=cmd_sanity)


def cmd_sanity(args: argparse.Namespace) -> int:
    from mova_eval.config import compose
    from mova_eval.sanity import run_sanity

    kinds = [k.strip() for k in args.defects.split(",") if k.strip()] if args.defects else None
    result = run_sanity(compose(args.overrides), args.out, kinds=kinds, quick=args.quick,
                        strengths=dict(args.strength), seed=args.seed)
    print((result.out_dir / "summary.md").read_text(encoding="utf-8"))
    c = result.counts
    print(f"{c['clips']} clips, {c['variants']} defected variants; {c['defected_scored']} defected scorings "
          f"computed, {c['cache_hits']} from cache; {result.timings['total']:.1f} s → {result.out_dir}")
    return 0
