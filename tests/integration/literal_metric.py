"""A per-item test metric whose values are literals keyed by item id, so a run's summary can be checked against
numbers worked out by hand (not recomputed from items.parquet with the aggregation's own formula).

Used as a configuration plug-in: ``plugins=[tests.integration.literal_metric:LiteralByItem]``,
``metrics.only=[...,test_literal]``.
"""
from __future__ import annotations

from mova_eval.metrics.base import CATEGORY_MEAN, ItemScore, Metric, MetricInfo, Output

PLUGIN = "tests.integration.literal_metric:LiteralByItem"

#: the embedded smoke suite's ten items (category in the comment) → the value this metric gives each
VALUES = {
    "smoke_en_01": 1.0, "smoke_en_02": 3.0,          # speech_en: (1 + 3) / 2 = 2
    "smoke_zh_01": 5.0, "smoke_zh_02": 7.0,          # speech_zh: (5 + 7) / 2 = 6
    "smoke_dialogue_01": 10.0,                       # dialogue:  10
    "smoke_sfx_01": 0.0, "smoke_sfx_02": 2.0,        # sfx:       (0 + 2) / 2 = 1
    "smoke_music_01": 4.0,                           # music:     4
    "smoke_ambience_01": 6.0, "smoke_ambience_02": 8.0,  # ambience: (6 + 8) / 2 = 7
}
#: MOVA's rule, the mean of the six category means: (2 + 6 + 10 + 1 + 4 + 7) / 6 = 30 / 6 = 5.0
#: (the pooled mean over the ten items would be 46 / 10 = 4.6, so the two rules are told apart)
SMOKE_CATEGORY_MEANS = {"speech_en": 2.0, "speech_zh": 6.0, "dialogue": 10.0, "sfx": 1.0, "music": 4.0,
                        "ambience": 7.0}
SMOKE_ALL = 5.0


class LiteralByItem(Metric):
    info = MetricInfo(name="test_literal", outputs=(Output("test_literal", "none"),), aggregation=CATEGORY_MEAN)

    def score(self, clip, item):
        return ItemScore({"test_literal": VALUES[item.id]})
