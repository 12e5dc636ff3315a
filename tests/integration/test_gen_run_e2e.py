"""`mova-eval run` end to end with a served generator: generate (loopback SGLang fake), score, and resume an
interrupted run without resubmitting remote jobs."""
from __future__ import annotations

import numpy as np
import pytest

from mova_eval import media
from mova_eval.config import compose
from mova_eval.runner import run

from .loopback import FakeSGLang, Loopback


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("fixture")
    t = np.arange(48000) / 16000
    media.encode(d / "c.mp4", np.full((24, 64, 64, 3), 100, np.uint8), 24.0,
                 (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], 16000)
    return (d / "c.mp4").read_bytes()


def test_run_scores_and_resumes_after_interruption(tmp_path, clip_bytes):
    fake = FakeSGLang(clip_bytes, polls_to_finish=10_000)  # first run: nothing finishes in time
    with Loopback(fake) as srv:
        base = ["suite=smoke", "suite.limit=3", "generator=mova_sglang", f"generator.url={srv.url}",
                "generator.poll_interval_s=0.01", "generator.poll_timeout_s=0.3", "generator.backoff_s=0.01",
                "metrics.only=[loudness]", f"output_dir={tmp_path}", "run_id=r1", "runtime.progress=false",
                "runtime.bootstrap=10"]
        first = run(compose(base))
        assert first.log.counts["clips_failed"] == 3
        assert first.items["error"].str.contains("not finished").all()
        assert fake.submits == 3
        fake.polls_to_finish = 1  # the server finishes the jobs it already has
        second = run(compose([*base, "runtime.retry_errors=true"]))
    assert fake.submits == 3  # resumed by remote id: no second submission
    assert second.log.counts["clips_failed"] == 0
    ok = second.items[second.items["error"].isna()]
    assert len(ok) and np.isfinite(ok["value"]).all()
    gen = second.log.generation
    assert all(g.get("resumed_remote_job") for g in gen.values()), gen


def test_ls_shows_every_generator_with_its_readiness(capsys, monkeypatch):
    from mova_eval.cli import main
    from mova_eval.registry import generator_classes

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-key-for-ls-0123456789")
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    section = out.split("generators:")[1].split("metrics:")[0]
    lines = {ln.split()[1]: ln for ln in section.strip().splitlines()}
    assert set(generator_classes()) <= set(lines)
    assert lines["veo3"].lstrip().startswith("✓")  # key present: ready
    assert lines["sora2"].lstrip().startswith("✗") and "export OPENAI_API_KEY" in lines["sora2"]
    assert "OpenMOSS/MOVA" in lines["mova_360p"] or lines["mova_360p"].lstrip().startswith("✓")
    assert "AIza-test-key" not in out
