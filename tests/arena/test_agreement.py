"""Metric–human agreement on a simulated arena: votes drawn from a known latent clip quality; one metric tracks that
quality, one is noise. The first must come out τ ≈ 1 and well above chance per battle, the second τ ≈ 0 and at
chance, each within its CI; plus the same through a real database and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mova_eval.arena import agreement

DIRECTIONS = {"av_align": "higher", "lse_c": "higher", "lse_d": "lower"}


def simulate(seed: int = 7, k: int = 8, items: int = 40, votes: int = 3000, voters: int = 60):
    rng = np.random.default_rng(seed)
    models = [f"m{i}" for i in range(k)]
    latent = dict(zip(models, np.linspace(-1.5, 1.5, k)))
    clips, quality = [], {}
    for m in models:
        for it in range(items):
            cid = f"{m}-{it}"
            quality[cid] = latent[m] + rng.normal(0, 0.3)
            clips.append({"clip_id": cid, "model": m, "item_id": f"item{it}"})
    clips = pd.DataFrame(clips)
    scores = pd.concat([
        clips.assign(output="av_align", value=[quality[c] + rng.normal(0, 0.1) for c in clips["clip_id"]]),
        clips.assign(output="lse_c", value=rng.normal(0, 1, len(clips))),
        clips.assign(output="lse_d", value=[-quality[c] for c in clips["clip_id"]]),  # lower is better
    ], ignore_index=True)
    rows = []
    for i in range(votes):
        a, b = rng.choice(k, 2, replace=False)
        it = int(rng.integers(0, items))
        ca, cb = f"m{a}-{it}", f"m{b}-{it}"
        p = 1 / (1 + np.exp(-2.0 * (quality[ca] - quality[cb])))
        u = rng.random()
        choice = "tie" if u < 0.06 else "both_bad" if u < 0.1 else ("a" if rng.random() < p else "b")
        loser_tag = ["sync"] if choice in ("a", "b") and rng.random() < 0.5 else []
        rows.append({"id": i, "kind": "model", "choice": choice, "model_a": f"m{a}", "model_b": f"m{b}",
                     "item_id": f"item{it}", "category": "c", "language": "en", "voter": f"v{rng.integers(voters)}",
                     "flags": [], "gold_answer": None, "clip_a": ca, "clip_b": cb, "pair_prob": 1.0,
                     "tags_a": loser_tag if choice == "b" else [], "tags_b": loser_tag if choice == "a" else []})
    return pd.DataFrame(rows), scores


@pytest.fixture(scope="module")
def result():
    votes, scores = simulate()
    return agreement.agreement_from_scores(votes, scores, DIRECTIONS, n_boot=300, n_boot_models=60)


def _get(items, output):
    return next(x for x in items if x.output == output)


def test_tracking_metric_recovers_the_ranking(result):
    m = _get(result.models, "av_align")
    assert m.k == 8 and m.kendall_tau.value > 0.9 and m.kendall_tau.low <= 1.0 <= m.kendall_tau.high + 1e-9
    assert m.kendall_tau.low > 0.6 and m.spearman_rho.value > 0.95
    b = _get(result.battles, "av_align")
    assert b.decided.low > 0.6 and b.coverage == 1.0 and b.n_tie > 0 and b.n_both_bad > 0
    assert b.ties_as_half.value < b.decided.value  # undecided votes dilute it
    assert b.decided_by_voter.low <= b.decided.value <= b.decided_by_voter.high


def test_noise_metric_is_at_chance_within_its_ci(result):
    m = _get(result.models, "lse_c")
    assert m.kendall_tau.low <= 0.0 <= m.kendall_tau.high and abs(m.kendall_tau.value) < 0.6
    b = _get(result.battles, "lse_c")
    assert b.decided.low <= 0.5 <= b.decided.high


def test_lower_is_better_is_respected(result):
    assert _get(result.models, "lse_d").kendall_tau.value > 0.9
    assert _get(result.battles, "lse_d").decided.value > 0.6


def test_sub_votes_match_the_family(result):
    sync = {t.output: t for t in result.tags if t.tag == "sync"}
    assert set(sync) == {"av_align", "lse_c", "lse_d"}
    assert sync["av_align"].agreement.low > 0.6 and sync["lse_c"].agreement.low <= 0.5 <= sync["lse_c"].agreement.high
    assert not any(t.tag == "audio" for t in result.tags)


def test_excluded_votes_do_not_count():
    votes, scores = simulate(votes=400, voters=10)  # 40 votes each: past probation
    flagged = votes.copy()
    flagged.loc[:99, "flags"] = pd.Series([["too_fast"]] * 100)
    res = agreement.agreement_from_scores(flagged, scores, DIRECTIONS, n_boot=50, n_boot_models=10)
    assert res.counts["counted"] == 300 and res.counts["excluded_by_reason"] == {"too_fast": 100}
    b = _get(res.battles, "av_align")
    assert b.n_decided + b.n_tie + b.n_both_bad == 300


def test_markdown_and_files(result, tmp_path):
    files = agreement.write(result, tmp_path)
    md = (tmp_path / "agreement.md").read_text()
    assert "| av_align | higher | 1.00 |" in md and "Kendall τ" in md and "| sync | av_align |" in md
    data = json.loads((tmp_path / "agreement.json").read_text())
    assert {b["output"] for b in data["battles"]} == {"av_align", "lse_c", "lse_d"}
    assert tmp_path / "agreement.png" in files


@pytest.mark.slow
def test_cli_on_a_real_database(tmp_path, arena_db, pool_template, make_client):
    """Votes cast through the API on the demo pool; the same synthetic clips re-scored with AV-Align in new run
    directories (the clip cache returns the very files the arena imported); the CLI matches clips by source hash
    and writes its tables."""
    from mova_eval.arena.demo import DEMO_MODELS
    from mova_eval.cli import main
    from mova_eval.config import compose
    from mova_eval.runner import run

    app = make_client()
    client = make_client.client(app)
    for i in range(16):
        battle = client.post("/api/battles").json()
        if battle.get("kind") == "gold":
            continue
        r = client.post("/api/votes", json={"token": battle["token"], "choice": "ab"[i % 2], "heard_a_s": 5.0,
                                            "heard_b_s": 5.0, "tags": {"a": ["sync"] if i % 2 else [], "b": []}})
        assert r.status_code == 200, r.text
    runs = []
    for label, extra in list(DEMO_MODELS.items())[:2]:  # as demo.make_runs, plus AV-Align
        cfg = compose(["generator=synthetic", f"+generator.label={label}", "metrics.only=[loudness,av_align]",
                       f"output_dir={tmp_path}", f"run_id={label}", "runtime.progress=false", "suite.limit=3",
                       "generator.duration=2.0", "runtime.bootstrap=10", *extra])
        runs.append(str(run(cfg).run_dir))
    assert main(["arena", "agreement", "--db", arena_db, *runs, "--out", str(tmp_path / "ag"), "--bootstrap", "50",
                 "--bootstrap-models", "10", "--probation-votes", "0"]) == 0  # one voter: no probation
    data = json.loads((tmp_path / "ag" / "agreement.json").read_text())
    n = data["counts"]["counted"]
    assert n >= 8 and data["counts"]["clips_with_scores"] == 6
    (b,) = data["battles"]  # loudness has no better side and is left out
    assert b["output"] == "av_align" and b["coverage"] == 1.0 and b["n_decided"] == n
    assert (tmp_path / "ag" / "agreement.md").read_text().startswith("# Metric–human agreement")


@pytest.mark.slow
def test_report_includes_sanity_and_agreement(tmp_path, arena_db, pool_template, make_client):
    """`mova-eval report RUNS --db DB --sanity DIR` carries both sections into Markdown, HTML and JSON."""
    from mova_eval.cli import main
    from mova_eval.config import compose
    from mova_eval.sanity import run_sanity

    app = make_client()
    client = make_client.client(app)
    for _ in range(6):
        battle = client.post("/api/battles").json()
        client.post("/api/votes", json={"token": battle["token"], "choice": "a", "heard_a_s": 5.0, "heard_b_s": 5.0})
    runs = sorted(str(p) for p in pool_template["runs"].iterdir() if (p / "run.json").is_file())
    cfg = compose(["metrics.only=[loudness]", "suite.limit=3", "generator.duration=2.0", "runtime.progress=false",
                   "runtime.bootstrap=50"])
    run_sanity(cfg, tmp_path / "sanity", kinds=["noise"], strengths={"noise": [0]})
    out = tmp_path / "report"
    assert main(["report", *runs, "--db", arena_db, "--sanity", str(tmp_path / "sanity"), "--out", str(out),
                 "--format", "md,html,json", "--no-plots"]) == 0
    md = (out / "report.md").read_text()
    assert "## Metric sanity (defect battery)" in md and "| rms_dbfs | ✓ ≥0 dB SNR |" in md
    assert "## Agreement with the arena's votes" in md and "counted votes of" in md
    html = (out / "report.html").read_text()
    assert "<h2>Metric sanity (defect battery)</h2>" in html and "<table>" in html.split("Metric sanity")[1]
    data = json.loads((out / "report.json").read_text())
    assert [s["title"] for s in data["sections"]] == ["Metric sanity (defect battery)", "Agreement with the arena's votes"]
