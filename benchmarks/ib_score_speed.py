"""IB-Score throughput (clips/s) and peak memory on 8 s 640×352 clips, against the reference ImageBind model code.

    python benchmarks/ib_score_speed.py [--clips 2] [--config huge|small] [--device cpu|cuda] [--no-ref]

Both sides use the same seeded random weights in the official key layout (``--config huge`` is the released
architecture, ~4.8 GB in float32; ``small`` is the reduced test configuration, only to check the script). Ours is
timed from the decoded file to the three values (ib_score, ib_tv, ib_ta) through the metric: decode, presets, the
kaldi front end, 6 + 15 vision clips, 3 audio clips, 2 texts. The reference (``imagebind-unofficial``'s
``ImageBindModel``, tests/metrics/imagebind_ref.py) is timed on the same prepared tensors only (no decode, no
front end), so the ratio flatters the reference. Peak RSS (VmHWM) is read at the end of each side, each side in its
own subprocess.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_clips(folder: Path, n: int, seconds: float = 8.0, size=(352, 640)) -> list[Path]:
    import numpy as np

    from mova_eval import media

    out = []
    for i in range(n):
        g = np.random.default_rng(i)
        t = int(seconds * 24)
        base = g.integers(0, 255, (1, size[0] // 16, size[1] // 16, 3), dtype=np.uint8)
        frames = np.repeat(np.repeat(np.repeat(base, t, 0), 16, 1), 16, 2)
        frames = np.stack([np.roll(f, 3 * k, axis=1) for k, f in enumerate(frames)]).astype(np.uint8)
        audio = (0.2 * g.standard_normal((2, int(seconds * 48000)))).astype(np.float32)
        out.append(media.encode(folder / f"clip{i}.mkv", frames, 24.0, audio, 48000, lossless=True))
    return out


def _network(config: str, seed: int = 0):
    import torch

    from mova_eval.metrics.features import imagebind as ib
    from tests.metrics.imagebind_ref import SMALL

    cfg = ib.HUGE if config == "huge" else ib.ImageBindConfig(**SMALL)
    torch.manual_seed(seed)
    return ib.ImageBind(cfg).eval()


def side(which: str, config: str, n: int, device: str) -> dict:
    import torch

    from mova_eval import media
    from mova_eval.metrics import ib_score
    from mova_eval.metrics.features import clip_bpe
    from mova_eval.spec import SuiteItem

    item = SuiteItem(id="b", category="set1", prompt="A dog barks twice while a red car drives past in the rain.")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_clips(Path(tmp), n)
        net = _network(config).to(device)
        if which == "ours":
            m = ib_score.IBScoreMetric(device=device)
            m._net, m._tok = net, clip_bpe.shared(str(clip_bpe.vocab_path()))
            t0 = time.perf_counter()
            vals = [m.score(media.decode(p), item).values for p in paths]
            dt = time.perf_counter() - t0
        else:
            from tests.metrics.imagebind_ref import reference

            mod, _ = reference()
            kw = {} if config == "huge" else dict(vision_embed_dim=64, vision_num_blocks=2, vision_num_heads=4,
                                                  text_embed_dim=48, text_num_blocks=2, text_num_heads=4,
                                                  audio_embed_dim=32, audio_num_blocks=2, audio_num_heads=4,
                                                  out_embed_dim=40)
            if config == "huge":
                kw = dict(vision_embed_dim=1280, vision_num_blocks=32, vision_num_heads=16, text_embed_dim=1024,
                          text_num_blocks=24, text_num_heads=16, out_embed_dim=1024)
            ref = mod.ImageBindModel(**kw).eval()
            ref.load_state_dict(net.state_dict(), strict=False)
            del net
            ref = ref.to(device)
            tok = clip_bpe.ClipTokenizer()
            prepared = []
            for p in paths:
                c = media.decode(p)
                v, _ = ib_score.mova_video_clips(c)
                j, _ = ib_score.javis_video_clips(c)
                a, _ = ib_score.audio_clips(c)
                ids = torch.tensor([tok(item.prompt, "cut")[0]] * 2)
                prepared.append((v, j, a.float(), ids))
            cos = torch.nn.CosineSimilarity(dim=-1)
            t0 = time.perf_counter()
            vals = []
            with torch.inference_mode():
                for v, j, a, ids in prepared:
                    r = ref({"vision": v[None].to(device), "audio": a[None].to(device)})
                    rj = ref({"vision": j[None].to(device), "text": ids.to(device)})
                    vals.append({"ib_score": float(cos(r["vision"], r["audio"])),
                                 "ib_tv": float(cos(rj["text"][:1], rj["vision"]))})
            dt = time.perf_counter() - t0
    return {"seconds": dt, "clips": n, "values": vals, "peak_rss_mb": _vmhwm_mb()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--config", choices=("huge", "small"), default="huge")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-ref", action="store_true")
    ap.add_argument("--side", choices=("ours", "reference"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.side:
        print(json.dumps(side(a.side, a.config, a.clips, a.device)))
        return 0
    results = {}
    for which in ("ours",) + (() if a.no_ref else ("reference",)):
        out = subprocess.run([sys.executable, __file__, "--side", which, "--config", a.config, "--clips",
                              str(a.clips), "--device", a.device], capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            return out.returncode
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
    for which, r in results.items():
        what = "decode → 3 values" if which == "ours" else "network forward on prepared tensors only"
        print(f"{which:>9}: {r['clips'] / r['seconds']:.4f} clips/s ({r['seconds']:.1f} s for {r['clips']} clips of "
              f"8 s 640x352; {what}); peak RSS {r['peak_rss_mb']:.0f} MB; config {a.config}, device {a.device}")
    if "reference" in results:
        o, r = results["ours"], results["reference"]
        print(f"    ratio: ours / reference clips/s = {(o['clips'] / o['seconds']) / (r['clips'] / r['seconds']):.2f}")
        d = max(abs(x["ib_score"] - y["ib_score"]) for x, y in zip(o["values"], r["values"]))
        print(f"    max |Δ ib_score| between the two: {d:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
