"""``generator.flow_shift`` reaches the sampler for every scheduler the Wan/LTX diffusers pipelines ship.

Regression for issue 11: Wan2.1's published checkpoints carry a ``UniPCMultistepScheduler`` whose shift key is
``flow_shift``; the adapter used to set FlowMatchEuler's ``shift`` only, so with UniPC the recorded 3.0 never
reached sampling. The checks below are on what the scheduler actually samples (its sigmas against the flow-shift
formula ``s·σ / (1 + (s − 1)·σ)`` applied to the unshifted schedule) and, for UniPC, on the clip itself.
Tiny random pipelines (tests/integration/tiny_diffusers.py), CPU, no download.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the generators extra (diffusers) is not installed")

from mova_eval import media  # noqa: E402
from mova_eval.generators.ltx2 import LTX2  # noqa: E402
from mova_eval.generators.wan21 import Wan21  # noqa: E402
from mova_eval.spec import GenRequest, SuiteItem  # noqa: E402

FACTORY = "tests.integration.tiny_diffusers:"
WAN = {"name": "wan21", "width": 16, "height": 16, "num_frames": 5, "num_inference_steps": 2, "dtype": "float32",
       "offload": "none", "max_sequence_length": 16}
LTX = {"name": "ltx2", "width": 32, "height": 32, "num_frames": 9, "num_inference_steps": 2, "max_sequence_length": 16,
       "dtype": "float32", "offload": "none", "stg_scale": 0.0, "audio_stg_scale": 0.0}
STEPS = 12


def _sampled_sigmas(scheduler) -> np.ndarray:
    scheduler.set_timesteps(STEPS)
    return np.asarray(scheduler.sigmas, dtype=np.float64)[:-1]  # the terminal sigma is appended, not shifted


def _unshift(sigma: np.ndarray, s: float) -> np.ndarray:
    """Inverse of the flow shift ``s·σ / (1 + (s − 1)·σ)``."""
    return sigma / (s - (s - 1) * sigma)


def _evenly_spaced(x: np.ndarray) -> bool:
    d = np.diff(x)
    return bool(np.allclose(d, d.mean(), rtol=1e-4, atol=1e-6))


def _assert_samples_with_shift(scheduler, s: float) -> None:
    """Each of these schedulers spaces its unshifted sigmas evenly and then applies the shift, so the sampled
    sigmas, unshifted by ``s``, are evenly spaced exactly when ``s`` is the shift the sampler used."""
    got = _sampled_sigmas(scheduler)
    assert not _evenly_spaced(got)  # non-vacuity: the schedule is shifted at all
    assert not _evenly_spaced(_unshift(got, s / 2)) and not _evenly_spaced(_unshift(got, s * 2))  # the check can fail
    assert _evenly_spaced(_unshift(got, s))


def _loaded(cls, cfg):
    g = cls(cfg, device="cpu")
    g.load()
    assert g._load_error is None, g._load_error
    return g


@pytest.mark.parametrize("factory,key", [("tiny_wan_unipc", "flow_shift"), ("tiny_wan_dpm", "flow_shift"),
                                         ("tiny_wan", "shift")])
def test_wan21_flow_shift_reaches_the_scheduler(factory, key):
    g = _loaded(Wan21, {**WAN, "pipeline_factory": FACTORY + factory, "flow_shift": 5.0})
    sched = g._pipe.scheduler
    assert sched.config[key] == 5.0
    _assert_samples_with_shift(sched, 5.0)


def test_ltx2_flow_shift_replaces_dynamic_shifting():
    g = _loaded(LTX2, {**LTX, "pipeline_factory": FACTORY + "tiny_ltx2_dynamic", "flow_shift": 4.0})
    sched = g._t2v.scheduler
    assert sched.config["use_dynamic_shifting"] is False and sched.config["shift"] == 4.0
    _assert_samples_with_shift(sched, 4.0)
    assert g._i2v is None or g._i2v.scheduler is sched  # image-to-video shares the shifted scheduler


def test_a_scheduler_that_would_ignore_the_shift_is_refused():
    g = Wan21({**WAN, "pipeline_factory": FACTORY + "tiny_wan_unipc_without_flow_sigmas", "flow_shift": 3.0})
    g.load()
    assert "generator.flow_shift=3" in g._load_error and "use_flow_sigmas" in g._load_error
    (res,) = g.generate([GenRequest("a#s0", SuiteItem(id="a", category="c", prompt="a cat"), 0)])
    assert res.path is None and "flow_shift" in res.error


def test_null_flow_shift_keeps_the_checkpoint_scheduler():
    g = _loaded(Wan21, {**WAN, "pipeline_factory": FACTORY + "tiny_wan_unipc", "flow_shift": None})
    assert g._pipe.scheduler.config["flow_shift"] == 1.0


@pytest.mark.slow
def test_the_shift_changes_the_clip_with_unipc(tmp_path):
    """End to end on Wan2.1's published scheduler class: two shifts, two different clips (same seed)."""
    item = SuiteItem(id="a", category="c", prompt="a robot dancing")
    frames, provenance = [], []
    for shift in (1.5, 8.0):
        g = _loaded(Wan21, {**WAN, "pipeline_factory": FACTORY + "tiny_wan_unipc", "flow_shift": shift})
        out = tmp_path / f"s{shift}.mp4"
        (res,) = g.generate([GenRequest("a#s0", item, 0, out_path=str(out))])
        assert res.ok, res.error
        frames.append(media.decode(res.path).video.astype(np.int16))
        provenance.append(res.provenance)
    assert frames[0].std() > 0 and np.abs(frames[0] - frames[1]).mean() > 0.1  # identical clips on the old code
    for shift, p in zip((1.5, 8.0), provenance):
        assert p["scheduler"] == {"scheduler": "UniPCMultistepScheduler", "flow_shift": shift}
