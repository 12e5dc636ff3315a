"""Metric cards: every metric states unit, range, direction, scale, the published tables that use it (or says none
does) and its docs page; `mova-eval ls --metric NAME` prints the card."""
from __future__ import annotations

from pathlib import Path

import pytest

from mova_eval.cli import main
from mova_eval.registry import metric_classes

ROOT = Path(__file__).resolve().parents[2]
CLASSES = metric_classes()


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_metric_has_a_complete_card(name):
    info = CLASSES[name].info
    card = info.card
    assert card is not None, f"{name} has no card"
    # every name the metric can write, its option-selected variants included, has its range on the card
    outs = [o.name for o in (*info.outputs, *info.variant_outputs)]
    ranged = [k for k, _ in card.ranges]
    assert sorted(ranged) == sorted(outs), f"{name}: ranges must cover exactly the outputs {outs}"
    assert all(r.strip() for _, r in card.ranges)
    assert all(o.direction in ("higher", "lower", "none") for o in info.outputs)
    assert card.scale.strip() and card.tables and all(t.strip() for t in card.tables)
    assert card.docs and (ROOT / card.docs).is_file(), f"{name}: docs page {card.docs!r} missing"


def test_output_names_are_unique_across_metrics():
    names = [o.name for c in CLASSES.values() for o in (*c.info.outputs, *c.info.variant_outputs)]
    assert len(names) == len(set(names))


def test_ls_metric_prints_the_card(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    assert main(["ls", "--metric", "desync"]) == 0
    out = capsys.readouterr().out
    for needle in ("unit: s", "range: [0, 2] s", "lower is better", "scale: ×1", "MOVA paper Table 4",
                   "MOVA-360p: paper 0.475", "licence:", "mova-eval weights fetch synchformer", "docs/metrics/desync.md"):
        assert needle in out, needle
    assert main(["ls", "--metric", "lse_latentsync"]) == 0
    assert "T2AV-Compass" in capsys.readouterr().out


def test_ls_metric_unknown_name_is_a_usage_error(capsys):
    assert main(["ls", "--metric", "no_such_metric"]) == 2
    assert "unknown metric 'no_such_metric'" in capsys.readouterr().err
