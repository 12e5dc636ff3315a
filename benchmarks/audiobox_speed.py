"""audiobox_aesthetics throughput (clips/s) and peak RSS on 8 s 640×352 clips, against the reference package's
``AesPredictor.forward`` (PyPI ``audiobox_aesthetics``, requirements/test-nodeps.txt).

    python benchmarks/audiobox_speed.py [--clips 4] [--device cpu|cuda] [--rate 48000]

Both sides use the same seeded random weights in the ``checkpoint.pt`` layout. Ours is timed from the decoded clip
(channel mean, resampling to 16 kHz, chunking) to the four values. The reference is fed the same clips already at
16 kHz (its torchaudio import is satisfied by the parity test's stand-in, which cannot resample), so its time
excludes resampling. Peak RSS is this process's VmHWM at the end (both models loaded).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rate", type=int, default=48_000, help="the clips' audio sample rate")
    a = ap.parse_args(argv)
    import numpy as np
    import torch

    from mova_eval.metrics import audiobox_aesthetics as mod
    from mova_eval.metrics.features import audiobox as ab
    from mova_eval.spec import Clip, SuiteItem
    from tests.metrics import test_audiobox_aesthetics as t

    ta = t._torchaudio_standin()
    sys.modules["torchaudio"], sys.modules["torchaudio.functional"] = ta, ta.functional
    from audiobox_aesthetics.infer import AesPredictor
    from audiobox_aesthetics.model.aes import AesMultiOutput

    cfg = {"proj_num_layer": 5, "proj_ln": True, "proj_act_fn": "gelu", "proj_dropout": 0, "nth_layer": 13,
           "use_weighted_layer_sum": True, "precision": "32", "normalize_embed": True, "output_dim": 1}
    transform = {k: {"mean": m, "std": s} for k, (m, s) in ab.TARGET_TRANSFORM.items()}
    torch.manual_seed(0)
    ref = AesMultiOutput(**cfg, target_transform=transform).eval()
    path = Path(tempfile.mkdtemp()) / "checkpoint.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in ref.state_dict().items()}, "model_cfg": cfg,
                "target_transform": transform}, path)
    pred = AesPredictor(checkpoint_pth=str(path), data_col="wav")
    pred.model.to(a.device)
    pred.device = torch.device(a.device)
    m = mod.AudioboxAestheticsMetric(device=a.device)
    model, tt = ab.load(path, device=a.device)
    m._net = (model, tt)
    g = np.random.default_rng(0)
    item = SuiteItem(id="b", category="c", prompt="")
    n = 8 * a.rate
    clips = [Clip(path=f"b{i}", content_hash=str(i), video=g.integers(0, 255, (192, 352, 640, 3), dtype=np.uint8),
                  fps=24.0, audio=(0.1 * g.standard_normal((2, n))).astype(np.float32), sample_rate=a.rate,
                  duration=8.0) for i in range(a.clips)]
    t0 = time.perf_counter()
    ours = [m.score(c, item).values["aes_pq"] for c in clips]
    t_ours = time.perf_counter() - t0
    at16 = [torch.from_numpy(ab.resample_like_torchaudio(c.audio, a.rate, 16_000)) for c in clips]
    t0 = time.perf_counter()
    refs = [pred.forward([{"wav": w, "sample_rate": 16_000}])[0]["PQ"] for w in at16]
    t_ref = time.perf_counter() - t0
    rss = next(int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    print(f"     ours: {a.clips / t_ours:.3f} clips/s (decoded clip at {a.rate} Hz → 4 values), device {a.device}")
    print(f"reference: {a.clips / t_ref:.3f} clips/s (AesPredictor.forward on 16 kHz input, no resampling)")
    print(f"ratio ours/reference: {t_ref / t_ours:.2f}x; peak RSS {rss:.0f} MB (both models); "
          f"max |Δ PQ| {max(abs(x - y) for x, y in zip(ours, refs)):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
