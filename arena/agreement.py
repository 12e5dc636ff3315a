"""Do the metrics agree with the arena's human votes? Per battle, per model ranking, and per sub-vote tag.

Inputs: the arena's vote table and clip manifest (``export.load_votes`` / ``load_manifest``, or an export folder) and
one or more run directories (``mova-eval run`` outputs) that scored the arena's clips. A clip is matched to its
scores by the sha256 of its source file (the arena stores it at import; the run stores it as ``clip_hash``), else by
(run id, item id). Only votes that count on the board are used, with the board's weights
(``rating.counting_votes`` under a ``CountingPolicy``: unflagged votes of reliable voters past probation, per-voter
and per-IP weight caps; the board's bias screen needs a fit and is not applied here), and only metric outputs with a
direction (``higher``/``lower`` is better): loudness, which has no better side, is not compared.

Per battle: on a decided vote (A or B better) the metric *agrees* when it scores the human choice better; equal
metric values count one half. Ties and "both bad" are not decided: they are left out of the main figure, and a
second figure counts every vote with ties and both-bad as one half (as the Bradley–Terry board does), which shows
how much the undecided votes dilute agreement; the count of each is reported. Intervals: 95 % percentile bootstrap,
clustered by voter, by prompt, and both at once (pigeonhole bootstrap: each vote weighted by the product of its
voter's and its prompt's resampling counts); the two-way interval is the one to quote.

Per model: the metric's model score is its mean over that model's arena clips (signed so that higher is better);
Kendall τ-b and Spearman ρ against the Bradley–Terry ratings of the main board (ties half, side term). Intervals:
bootstrap over prompts (each resample draws prompts with replacement and takes their votes and their clips'
scores) and, inside it, over votes (a multinomial redraw of the selected votes), refitting BT every round.
With k models τ takes only k(k−1)/2+1 values, so its interval is coarse for small k.

Per sub-vote: a voter may tag what was wrong with each side (visual, audio, sync, prompt). A battle where exactly one
side carries tag T says the other side is better on T; the metrics of the family matching T (``ASPECTS``) agree when
they score the untagged side better. Intervals as per battle.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mova_eval.arena import rating

#: which metric outputs speak to each sub-vote tag
ASPECTS: dict[str, tuple[str, ...]] = {
    "sync": ("av_align", "lse_c", "lse_d", "lse_c_mediapipe", "lse_d_mediapipe", "lse_c_latentsync",
             "lipsync_offset_avgen", "desync", "desync_avgen"),
    "audio": ("dnsmos_p808", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "kl_panns"),
    "visual": (),
    "prompt": ("clap", "clap_mova", "wer", "cer", "cpwer", "cpcer"),
}
DECIDED = ("a", "b")


@dataclass
class Interval:
    value: float
    low: float
    high: float


@dataclass
class BattleAgreement:
    output: str
    direction: str
    coverage: float                 # share of counted votes whose two clips both have a value
    n_decided: int
    n_tie: int
    n_both_bad: int
    metric_ties: int                # decided votes where the metric scores both clips the same
    decided: Interval               # two-way clustered (voter × prompt)
    decided_by_voter: Interval
    decided_by_prompt: Interval
    ties_as_half: Interval          # every covered vote, tie / both bad = ½ (two-way clustered)


@dataclass
class ModelAgreement:
    output: str
    k: int
    models: list[str]
    metric_means: list[float]       # signed: higher is better
    bt_ratings: list[float]
    kendall_tau: Interval
    spearman_rho: Interval
    rounds: int
    degenerate_rounds: int          # resamples where τ was undefined (a constant ranking)


@dataclass
class TagAgreement:
    tag: str
    output: str
    n: int
    agreement: Interval


@dataclass
class AgreementResult:
    battles: list[BattleAgreement] = field(default_factory=list)
    models: list[ModelAgreement] = field(default_factory=list)
    tags: list[TagAgreement] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- inputs


def clip_scores(manifest: pd.DataFrame, run_dirs: Sequence[str | Path]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Long table (clip_id, model, item_id, output, value) of run scores matched to arena clips, plus each
    output's direction. Matching: source sha256 == the run row's clip_hash, else (run id, item id)."""
    from mova_eval.errors import MovaEvalError
    from mova_eval.registry import metric_classes
    from mova_eval.results import ItemLog, read_run_json

    frames = []
    for d in run_dirs:
        d = Path(d)
        if not (d / "run.json").is_file():
            raise MovaEvalError(f"{d}: not a run directory (no run.json)")
        log = read_run_json(d)
        rows = pd.DataFrame([asdict(r) for r in ItemLog(d).load().items])
        if rows.empty:
            continue
        rows["run_id"] = log.run_id
        frames.append(rows)
    directions: dict[str, str] = {}
    for cls in metric_classes().values():
        for o in cls.info.outputs:
            directions[o.name] = o.direction
    if not frames:
        return pd.DataFrame(columns=["clip_id", "model", "item_id", "output", "value"]), directions
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[runs["metric"].map(lambda m: directions.get(m) in ("higher", "lower"))]
    clips = manifest[manifest["model"].notna()]
    by_hash = runs.dropna(subset=["clip_hash"]).drop_duplicates(["clip_hash", "metric"])
    a = clips.merge(by_hash, left_on="source_sha256", right_on="clip_hash", suffixes=("", "_run"))
    matched = set(a["clip_id"])
    rest = clips[~clips["clip_id"].isin(matched)]
    b = rest.merge(runs.drop_duplicates(["run_id", "item_id", "metric"]), on=["run_id", "item_id"],
                   suffixes=("", "_run"))
    both = pd.concat([a, b], ignore_index=True)
    out = both[["clip_id", "model", "item_id", "metric", "value"]].rename(columns={"metric": "output"})
    return out.reset_index(drop=True), directions


# ----------------------------------------------------------------------------------------------- bootstrap


def _counts(groups: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    return np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[groups]


def _clustered(values: np.ndarray, voters: np.ndarray, prompts: np.ndarray, n_boot: int, seed: int,
               how: str, weights: np.ndarray | None = None) -> Interval:
    """Weighted mean of ``values`` with a percentile bootstrap clustered by voter, prompt or both (pigeonhole)."""
    values = np.asarray(values, float)
    if values.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    base = np.ones(values.size) if weights is None else np.asarray(weights, float)
    est = float(np.dot(base, values) / base.sum())
    if values.size < 2 or n_boot <= 0:
        return Interval(est, math.nan, math.nan)
    gv, nv = pd.factorize(voters)[0], len(set(voters))
    gp, np_ = pd.factorize(prompts)[0], len(set(prompts))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        w = base.copy()
        if how in ("voter", "both"):
            w = w * _counts(gv, nv, rng)
        if how in ("prompt", "both"):
            w = w * _counts(gp, np_, rng)
        if w.sum() > 0:
            boots.append(float(np.dot(w, values) / w.sum()))
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (math.nan, math.nan)
    return Interval(est, float(lo), float(hi))


# ----------------------------------------------------------------------------------------------- agreement


def _paired(votes: pd.DataFrame, scores: pd.DataFrame, output: str, sign: float) -> pd.DataFrame:
    s = scores[scores["output"] == output].drop_duplicates("clip_id").set_index("clip_id")["value"]
    v = votes.assign(va=votes["clip_a"].map(s).astype(float) * sign, vb=votes["clip_b"].map(s).astype(float) * sign)
    return v[np.isfinite(v["va"]) & np.isfinite(v["vb"])]


def battle_agreement(votes: pd.DataFrame, scores: pd.DataFrame, output: str, direction: str, *, n_boot: int = 1000,
                     seed: int = 0) -> BattleAgreement:
    sign = 1.0 if direction == "higher" else -1.0
    v = _paired(votes, scores, output, sign)
    pref = np.sign(v["va"].to_numpy() - v["vb"].to_numpy())  # +1 metric prefers A
    human = v["choice"].map({"a": 1.0, "b": -1.0, "tie": 0.0, "both_bad": 0.0}).to_numpy()
    decided = v["choice"].isin(DECIDED).to_numpy()
    agree = np.where(pref == 0, 0.5, (pref == human).astype(float))
    half = np.where(decided, agree, 0.5)
    vd, pd_ = v["voter"].to_numpy()[decided], v["item_id"].to_numpy()[decided]
    w = _weights(v)
    wd = w[decided]
    return BattleAgreement(
        output=output, direction=direction, coverage=len(v) / len(votes) if len(votes) else math.nan,
        n_decided=int(decided.sum()), n_tie=int((v["choice"] == "tie").sum()),
        n_both_bad=int((v["choice"] == "both_bad").sum()), metric_ties=int(((pref == 0) & decided).sum()),
        decided=_clustered(agree[decided], vd, pd_, n_boot, seed, "both", wd),
        decided_by_voter=_clustered(agree[decided], vd, pd_, n_boot, seed, "voter", wd),
        decided_by_prompt=_clustered(agree[decided], vd, pd_, n_boot, seed, "prompt", wd),
        ties_as_half=_clustered(half, v["voter"].to_numpy(), v["item_id"].to_numpy(), n_boot, seed, "both", w))


def _weights(votes: pd.DataFrame) -> np.ndarray:
    """The board's per-vote weights (voter/IP caps), 1 where the table has none."""
    if "weight" not in votes:
        return np.ones(len(votes))
    return votes["weight"].fillna(1.0).to_numpy(float)


def _rank_corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy.stats import kendalltau, spearmanr

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    return float(kendalltau(x, y).statistic), float(spearmanr(x, y).statistic)


def _bt(votes: pd.DataFrame, names: list[str], weights: np.ndarray | None = None) -> np.ndarray:
    idx = {m: i for i, m in enumerate(names)}
    fit = rating.fit_bt(votes["model_a"].map(idx).to_numpy(np.int64), votes["model_b"].map(idx).to_numpy(np.int64),
                        votes["choice"].map(rating.SCORE).to_numpy(float), len(names), weights=weights,
                        side_term=True)
    return rating.CENTER + rating.POINTS * fit.strengths


def model_agreement(votes: pd.DataFrame, scores: pd.DataFrame, output: str, direction: str, *, n_boot: int = 200,
                    seed: int = 0) -> ModelAgreement | None:
    sign = 1.0 if direction == "higher" else -1.0
    s = scores[(scores["output"] == output) & np.isfinite(scores["value"].astype(float))].drop_duplicates("clip_id")
    names = sorted((set(votes["model_a"]) | set(votes["model_b"])) & set(s["model"]))
    v = votes[votes["model_a"].isin(names) & votes["model_b"].isin(names)]
    if len(names) < 2 or v.empty:
        return None
    s = s[s["model"].isin(names)]

    def means(sub: pd.DataFrame, w: np.ndarray | None = None) -> np.ndarray:
        ww = np.ones(len(sub)) if w is None else w
        frame = pd.DataFrame({"m": sub["model"].to_numpy(), "x": sub["value"].to_numpy(float) * sign * ww, "w": ww})
        g = frame.groupby("m").sum()
        g = g.reindex(names)
        return (g["x"] / g["w"]).to_numpy(float)

    metric_means = means(s)
    vote_w = _weights(v)
    bt = _bt(v, names, weights=vote_w)
    tau, rho = _rank_corr(metric_means, bt)
    items = sorted(set(v["item_id"]) | set(s["item_id"]))
    item_idx = {it: i for i, it in enumerate(items)}
    vi = v["item_id"].map(item_idx).to_numpy()
    si = s["item_id"].map(item_idx).to_numpy()
    rng = np.random.default_rng(seed)
    taus, rhos, degenerate = [], [], 0
    for _ in range(n_boot):
        c = np.bincount(rng.integers(0, len(items), len(items)), minlength=len(items)).astype(float)
        wv = c[vi]
        if wv.sum() == 0:
            degenerate += 1
            continue
        wv = rng.multinomial(int(wv.sum()), wv / wv.sum()).astype(float)  # then the votes of those prompts
        ws = c[si]
        keep_v, keep_s = wv > 0, ws > 0
        mm = means(s[keep_s], ws[keep_s])
        if not np.all(np.isfinite(mm)):
            degenerate += 1
            continue
        b = _bt(v[keep_v], names, weights=wv[keep_v] * vote_w[keep_v])
        t, r = _rank_corr(mm, b)
        if not math.isfinite(t):
            degenerate += 1
            continue
        taus.append(t)
        rhos.append(r)

    def iv(est, xs):
        if not xs:
            return Interval(est, math.nan, math.nan)
        lo, hi = np.percentile(xs, [2.5, 97.5])
        return Interval(est, float(lo), float(hi))

    return ModelAgreement(output=output, k=len(names), models=names, metric_means=[float(x) for x in metric_means],
                          bt_ratings=[float(x) for x in bt], kendall_tau=iv(tau, taus), spearman_rho=iv(rho, rhos),
                          rounds=n_boot, degenerate_rounds=degenerate)


def tag_agreement(votes: pd.DataFrame, scores: pd.DataFrame, output: str, direction: str, tag: str, *,
                  n_boot: int = 1000, seed: int = 0) -> TagAgreement | None:
    sign = 1.0 if direction == "higher" else -1.0
    v = _paired(votes, scores, output, sign)
    ta = v["tags_a"].map(lambda t: tag in rating._as_list(t))
    tb = v["tags_b"].map(lambda t: tag in rating._as_list(t))
    one = (ta ^ tb).to_numpy()
    if not one.any():
        return None
    v, ta = v[one], ta.to_numpy()[one]
    better_a = np.where(ta, -1.0, 1.0)  # the untagged side is better on this aspect
    pref = np.sign(v["va"].to_numpy() - v["vb"].to_numpy())
    agree = np.where(pref == 0, 0.5, (pref == better_a).astype(float))
    return TagAgreement(tag, output, int(one.sum()), _clustered(agree, v["voter"].to_numpy(), v["item_id"].to_numpy(),
                                                                n_boot, seed, "both", _weights(v)))


def agreement(votes: pd.DataFrame, manifest: pd.DataFrame, run_dirs: Sequence[str | Path], *, n_boot: int = 1000,
              n_boot_models: int = 200, seed: int = 0, policy: "rating.CountingPolicy | None" = None
              ) -> AgreementResult:
    """Everything ``mova-eval arena agreement`` reports, from the vote table, the clip manifest and run dirs."""
    scores, directions = clip_scores(manifest, run_dirs)
    return agreement_from_scores(votes, scores, directions, n_boot=n_boot, n_boot_models=n_boot_models, seed=seed,
                                 policy=policy)


def agreement_from_scores(votes: pd.DataFrame, scores: pd.DataFrame, directions: Mapping[str, str], *,
                          n_boot: int = 1000, n_boot_models: int = 200, seed: int = 0,
                          policy: "rating.CountingPolicy | None" = None) -> AgreementResult:
    policy = policy or rating.CountingPolicy()
    counted, excluded, _ = rating.counting_votes(votes, policy=policy) if len(votes) else (votes, {}, None)
    res = AgreementResult()
    res.counts = {"votes": int(len(votes)), "counted": int(len(counted)), "excluded_by_reason": excluded,
                  "decided": int(counted["choice"].isin(DECIDED).sum()) if len(counted) else 0,
                  "clips_with_scores": int(scores["clip_id"].nunique()) if len(scores) else 0}
    res.method = {"battle": "decided votes (A or B); metric ties count 1/2; ties and both-bad left out (second "
                            "figure: every vote, tie/both-bad = 1/2)",
                  "battle_ci": "95% percentile bootstrap, two-way clustered by voter x prompt (pigeonhole); "
                               "one-way voter and prompt intervals beside it",
                  "model": "Kendall tau-b and Spearman rho of the model's mean metric (signed, higher = better) vs "
                           "Bradley-Terry ratings (ties 1/2, side term)",
                  "model_ci": "bootstrap over prompts, then a multinomial redraw of the votes, BT refit per round",
                  "tags": "battles where exactly one side has the tag: the untagged side is better on that aspect",
                  "bootstrap": n_boot, "bootstrap_models": n_boot_models, "seed": seed,
                  "counting_policy": policy.describe(),
                  "votes": "the board's counted votes with its weights (flags, gold reliability, probation, caps); "
                           "the board's bias screen is not applied"}
    if counted.empty or scores.empty:
        return res
    for output in sorted(set(scores["output"])):
        direction = directions.get(output)
        if direction not in ("higher", "lower"):
            continue
        b = battle_agreement(counted, scores, output, direction, n_boot=n_boot, seed=seed)
        if b.n_decided + b.n_tie + b.n_both_bad == 0:
            continue
        res.battles.append(b)
        m = model_agreement(counted, scores, output, direction, n_boot=n_boot_models, seed=seed)
        if m is not None:
            res.models.append(m)
        for tag, outputs in ASPECTS.items():
            if output in outputs:
                t = tag_agreement(counted, scores, output, direction, tag, n_boot=n_boot, seed=seed)
                if t is not None:
                    res.tags.append(t)
    return res


# ----------------------------------------------------------------------------------------------- output


def _iv(i: Interval, digits: int = 3) -> str:
    if not math.isfinite(i.value):
        return "nan"
    ci = f" [{i.low:.{digits}f}, {i.high:.{digits}f}]" if math.isfinite(i.low) else ""
    return f"{i.value:.{digits}f}{ci}"


def to_markdown(res: AgreementResult) -> str:
    c = res.counts
    lines = ["# Metric–human agreement", "",
             f"{c.get('counted', 0)} counted votes of {c.get('votes', 0)} ({c.get('decided', 0)} decided); "
             f"excluded: {json.dumps(c.get('excluded_by_reason', {}))}; {c.get('clips_with_scores', 0)} clips with "
             f"scores.", "", f"Per battle: {res.method.get('battle')}. CI: {res.method.get('battle_ci')}.", "",
             "| output | better | coverage | decided | ties | both bad | metric ties | agreement (voter×prompt) | "
             "by voter | by prompt | ties as ½ |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in res.battles:
        lines.append(f"| {b.output} | {b.direction} | {b.coverage:.2f} | {b.n_decided} | {b.n_tie} | {b.n_both_bad} | "
                     f"{b.metric_ties} | {_iv(b.decided)} | {_iv(b.decided_by_voter)} | {_iv(b.decided_by_prompt)} | "
                     f"{_iv(b.ties_as_half)} |")
    lines += ["", f"Per model: {res.method.get('model')}. CI: {res.method.get('model_ci')}.", "",
              "| output | k | Kendall τ | Spearman ρ | rounds (degenerate) | metric order (best first) |",
              "|---|---|---|---|---|---|"]
    for m in res.models:
        order = [n for _, n in sorted(zip(m.metric_means, m.models), reverse=True)]
        lines.append(f"| {m.output} | {m.k} | {_iv(m.kendall_tau)} | {_iv(m.spearman_rho)} | {m.rounds} "
                     f"({m.degenerate_rounds}) | {', '.join(order)} |")
    lines += ["", f"Per sub-vote tag: {res.method.get('tags')}.", "", "| tag | output | battles | agreement |",
              "|---|---|---|---|"]
    for t in res.tags:
        lines.append(f"| {t.tag} | {t.output} | {t.n} | {_iv(t.agreement)} |")
    if not res.battles:
        lines += ["", "No metric output with a direction covers the counted votes' clips."]
    return "\n".join(lines) + "\n"


def to_json(res: AgreementResult) -> dict[str, Any]:
    from mova_eval.results import nan_to_null

    return nan_to_null(asdict(res))


def plot(res: AgreementResult, path: Path) -> bool:
    """Per-battle agreement with CIs (left) and Kendall τ with CIs (right); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not res.battles:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 0.45 * max(len(res.battles), 3) + 1.2))
    names = [b.output for b in res.battles]
    y = np.arange(len(names))
    val = [b.decided.value for b in res.battles]
    err = [[max(0, b.decided.value - b.decided.low) if math.isfinite(b.decided.low) else 0 for b in res.battles],
           [max(0, b.decided.high - b.decided.value) if math.isfinite(b.decided.high) else 0 for b in res.battles]]
    ax1.errorbar(val, y, xerr=err, fmt="o", capsize=3)
    ax1.axvline(0.5, color="0.6", lw=0.8)
    ax1.set_yticks(y, names, fontsize=7)
    ax1.set_xlim(0, 1)
    ax1.set_title("per-battle agreement (decided votes, 95% CI)", fontsize=8)
    ms = {m.output: m for m in res.models}
    tv = [ms[n].kendall_tau.value if n in ms else math.nan for n in names]
    terr = [[max(0, ms[n].kendall_tau.value - ms[n].kendall_tau.low) if n in ms and math.isfinite(ms[n].kendall_tau.low)
             else 0 for n in names],
            [max(0, ms[n].kendall_tau.high - ms[n].kendall_tau.value) if n in ms and math.isfinite(ms[n].kendall_tau.high)
             else 0 for n in names]]
    ax2.errorbar(tv, y, xerr=terr, fmt="s", capsize=3, color="tab:orange")
    ax2.axvline(0, color="0.6", lw=0.8)
    ax2.set_yticks(y, names, fontsize=7)
    ax2.set_xlim(-1.05, 1.05)
    ax2.set_title("Kendall τ vs Bradley–Terry (95% CI)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write(res: AgreementResult, out: str | Path) -> list[Path]:
    from mova_eval.cache import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "agreement.json", out / "agreement.md"]
    atomic_write_text(files[0], json.dumps(to_json(res), indent=2) + "\n")
    atomic_write_text(files[1], to_markdown(res))
    if plot(res, out / "agreement.png"):
        files.append(out / "agreement.png")
    return files
