"""A damaged or replaced checkpoint makes its metric unavailable with the reason; the run's other metrics go on
(issue 15 item 8). Before the fix a garbage file crashed the run with an unpickling traceback, and a file whose
hash differed from its pin was loaded anyway."""
from __future__ import annotations

import json

import pytest

from mova_eval import weights
from mova_eval.config import compose
from mova_eval.runner import run

BASE = ["metrics.only=[is,loudness]", "suite.limit=2", "runtime.progress=false", "runtime.bootstrap=10",
        "runtime.allow_unavailable=true"]


@pytest.fixture
def user_weights(tmp_path, monkeypatch):
    from mova_eval.metrics.features import panns

    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(folder))
    monkeypatch.setattr(panns, "_LOADED", {})
    return folder / weights.get("panns_cnn14_32k").filename


@pytest.fixture
def unpinned_user_weights(user_weights, unpin_weights):
    """The same file, with the publisher's md5 set aside: the tests below reach the checks behind it (loading, the
    sha256 recorded on first use), which a stand-in file would otherwise never pass."""
    unpin_weights("panns_cnn14_32k")
    return user_weights


def test_a_file_failing_the_publishers_md5_is_not_loaded(tmp_path, user_weights):
    import torch

    from mova_eval.metrics.features import panns

    torch.save({"model": panns.build_cnn14(32000, seed=1).state_dict()}, user_weights)  # loadable, but not Zenodo's
    out = run(compose([f"output_dir={tmp_path}", "run_id=m", *BASE]))
    st = _status(out, "is")
    assert not st.available and "expected the publisher's 541141fa2ee191a88f24a3219fff024e" in st.reason
    assert str(user_weights) in st.reason and "zenodo.org/records/3987831" in st.reason
    assert panns._LOADED == {}  # never loaded
    loud = out.items[out.items["family"] == "loudness"]
    assert len(loud) and loud["value"].notna().all()


def _status(outcome, name):
    return next(s for s in outcome.log.metrics if s.name == name)


def test_a_garbage_checkpoint_makes_its_metric_unavailable_and_the_run_goes_on(tmp_path, unpinned_user_weights):
    user_weights = unpinned_user_weights
    user_weights.write_bytes(b"not a torch checkpoint" * 100)
    out = run(compose([f"output_dir={tmp_path}", "run_id=g", *BASE]))
    st = _status(out, "is")
    assert not st.available and "loading failed" in st.reason
    assert st.command == "mova-eval weights verify"
    loud = out.items[out.items["family"] == "loudness"]
    assert len(loud) and loud["value"].notna().all()


def test_a_file_that_differs_from_its_pin_is_not_loaded(tmp_path, unpinned_user_weights, monkeypatch):
    import torch

    user_weights = unpinned_user_weights
    from mova_eval.metrics.features import panns

    torch.save({"model": panns.build_cnn14(32000, seed=1).state_dict()}, user_weights)  # a loadable checkpoint
    pins = weights.weights_dir() / "pins.json"
    pins.parent.mkdir(parents=True, exist_ok=True)
    pins.write_text(json.dumps({"panns_cnn14_32k": "f" * 64}))  # …but not the file that was first fetched
    try:
        out = run(compose([f"output_dir={tmp_path}", "run_id=p", *BASE]))
    finally:
        pins.unlink()
    st = _status(out, "is")
    assert not st.available and "expected " + "f" * 64 in st.reason
    assert panns._LOADED == {}  # never loaded
