"""A suite declares the reference statistics it is scored against (``references: {metric: NAME}`` in its config);
the runner uses them where ``metrics.options.<metric>.reference`` is unset, and an explicit option wins."""
from __future__ import annotations

import pytest

from mova_eval.config import compose
from mova_eval.errors import ConfigError, SuiteError
from mova_eval.references import reference_source, with_suite_references
from mova_eval.suites import load_suite


def test_suite_config_declares_references():
    cfg = compose(["suite=smoke"])
    assert set(cfg["suite"]["references"]) == {"fvd", "fad", "fad_panns", "fad_clap"}  # listed, so overridable
    assert dict(load_suite(cfg["suite"]).references) == {}
    cfg = compose(["suite=verse_set2", "suite.references.fvd=real_videos", "suite.references.fad=per_item"])
    assert cfg["suite"]["references"]["fad_clap"] is None
    suite = load_suite({**cfg["suite"], "loader": "smoke"})  # (verse_set2 itself would need the Verse-Bench file)
    assert dict(suite.references) == {"fvd": "real_videos", "fad": "per_item"}  # null = none declared
    with pytest.raises(SuiteError, match="references must map metric names"):
        load_suite({"loader": "smoke", "name": "smoke", "references": ["fvd"]})


def test_unset_options_are_filled_and_explicit_ones_win():
    suite = load_suite({"loader": "smoke", "name": "smoke", "references": {"fvd": "real_videos", "fad": "real_audio",
                                                                          "fad_panns": "panns_ref"}})
    mcfg = compose(["metrics=default", "metrics.options.fad.reference=mine"])["metrics"]
    assert mcfg["options"]["fvd"] == {"reference": None}
    out = with_suite_references(mcfg, suite)
    assert out["options"]["fvd"] == {"reference": "real_videos", "reference_from": "suite smoke (references.fvd)"}
    assert out["options"]["fad"] == {"reference": "mine"}  # the explicit option wins, no source rewritten
    assert out["options"]["fad_panns"]["reference"] == "panns_ref"
    assert mcfg["options"]["fvd"] == {"reference": None}  # the composed config itself is left as it was
    assert reference_source("fad", out["options"]["fad"]) == "metrics.options.fad.reference"
    assert reference_source("fvd", out["options"]["fvd"]) == "suite smoke (references.fvd)"
    # a metric missing from metrics.options gets an entry
    assert with_suite_references({"only": ["fvd"]}, suite)["options"]["fvd"]["reference"] == "real_videos"


def test_suite_naming_a_metric_without_references_is_refused():
    suite = load_suite({"loader": "smoke", "name": "smoke", "references": {"loudness": "x"}})
    with pytest.raises(ConfigError, match=r"declares references for \['loudness'\].*take no reference statistics"):
        with_suite_references({}, suite)
    assert with_suite_references({"only": ["fvd"]}, load_suite({"loader": "smoke"})) == {"only": ["fvd"]}
