import subprocess
import sys

import pytest

from mova_eval.cache import Cache, make_key
from mova_eval.errors import RegistryKeyError
from mova_eval.metrics.base import Metric
from mova_eval.registry import generator_classes, get_metric_class, metric_classes


def test_cache_roundtrip_and_torn_entries_are_recomputed(tmp_path):
    c = Cache("t", root=tmp_path)
    k = make_key("a", 1)
    assert c.get(k) is None
    c.put(k, {"v": 1})
    assert c.get(k) == {"v": 1}
    c.path(k).write_bytes(b"\x80\x05garbage")  # torn write
    assert c.get(k, "missing") == "missing" and not c.path(k).exists()
    calls = []
    assert c.get_or_compute(k, lambda: calls.append(1) or 7) == 7
    assert c.get_or_compute(k, lambda: calls.append(1) or 8) == 7
    assert calls == [1]


def test_keys_depend_on_every_part():
    assert make_key("clip", "h1", "m", "v1") != make_key("clip", "h1", "m", "v2")
    assert make_key({"b": 1, "a": 2}) == make_key({"a": 2, "b": 1})


def test_registry_names_outputs_uniquely():
    outputs = {}
    for name, cls in metric_classes().items():
        assert issubclass(cls, Metric) and cls.info.name == name
        assert cls.info.outputs, name
        for o in cls.info.outputs:
            assert o.direction in ("higher", "lower", "none"), (name, o)
            assert o.name not in outputs, f"output {o.name} declared by {outputs.get(o.name)} and {name}"
            outputs[o.name] = name
    assert "loudness" in metric_classes() and "synthetic" in generator_classes()


def test_unknown_names_suggest_close_ones():
    with pytest.raises(RegistryKeyError, match="Did you mean 'loudness'"):
        get_metric_class("loudnes")


def test_listing_metrics_does_not_import_heavy_frameworks():
    code = ("import sys; from mova_eval.registry import metric_classes, generator_classes; metric_classes(); "
            "generator_classes(); heavy = [m for m in ('torch', 'onnxruntime', 'ctranslate2', 'transformers', "
            "'faster_whisper', 'cv2', 'diffusers') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing the registries pulled in {out}: move those imports inside load()"
