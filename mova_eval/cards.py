"""Metric cards: what one metric's numbers mean, printed by ``mova-eval ls --metric NAME``.

A card gathers what a reader needs before putting a value next to a published one: per output the unit, range and
direction; the scale factor against the reference's raw value; the published tables that use the metric and in
which protocol variant; the value the reference gives on real data where known; plus the aggregation rule, the
reference implementation, the checkpoints with their licences, and whether it can run here (with the command that
would make it runnable).
"""
from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mova_eval.metrics.base import Metric

_DIRECTION = {"higher": "higher is better", "lower": "lower is better", "none": "no better direction"}


def render(cls: type[Metric]) -> str:
    """The card of a metric class as plain text."""
    from mova_eval import weights

    info = cls.info
    card = info.card
    lines = [f"{info.name} — {info.description}", ""]
    lines.append("outputs:")
    for o in info.outputs:
        lines.append(f"  {o.name}")
        lines.append(f"    unit: {o.unit or 'dimensionless'}; range: {info.value_range(o.name) or 'not stated'}; "
                     f"{_DIRECTION.get(o.direction, o.direction)}")
        if o.description:
            lines += textwrap.wrap(o.description, 108, initial_indent="    ", subsequent_indent="    ")
    if info.variant_outputs:
        lines.append("outputs an option selects instead (own names, never mixed with the above):")
        for o in info.variant_outputs:
            lines.append(f"  {o.name}: {o.description}" if o.description else f"  {o.name}")
    lines.append(f"aggregation: {info.aggregation}")
    if card is None:
        lines.append("card: not written yet (scale, published tables and reference values unknown)")
    else:
        lines.append(f"scale: {card.scale}")
        lines.append("published tables:")
        lines += [f"  - {t}" for t in card.tables] or ["  - none"]
        lines.append("reference values on real data:")
        lines += [f"  - {v}" for v in card.reference_values] or ["  - none known"]
        if card.notes:
            lines += textwrap.wrap(f"notes: {card.notes}", 110, subsequent_indent="  ")
    if info.reference:
        lines += textwrap.wrap(f"reference implementation: {info.reference}", 110, subsequent_indent="  ")
    for w in info.weights:
        spec = weights.get(w)
        lines.append(f"weights: {w} ({spec.filename}); licence: {spec.license}"
                     + (" — non-commercial" if spec.non_commercial else ""))
    av = cls.availability()
    if av.ok:
        lines.append("runs here: yes")
    else:
        lines.append(f"runs here: no — {av.reason}" + (f"; run: {av.command}" if av.command else ""))
    lines.append(f"metric version: {info.version}" + (f"; docs: {card.docs}" if card and card.docs else ""))
    return "\n".join(lines)
