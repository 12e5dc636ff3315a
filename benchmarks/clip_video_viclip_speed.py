"""clip_video_viclip throughput (clips/s) and peak RSS on 8 s 640×352 clips, against the reference ViCLIP.

    python benchmarks/clip_video_viclip_speed.py [--clips 2] [--device cpu|cuda] [--layers 24]

Both sides use the same seeded random weights in the official layout (the real checkpoint is not needed). Ours is
timed from the decoded clip (frame selection, BGR swap, resize, crop) to the value; the reference ViCLIP
(OpenGVLab/InternVideo ``Data/InternVid/viclip``, imported through tests/metrics/viclip_ref.py, which needs
``MOVA_EVAL_VICLIP``) on the same prepared frames only, text encoded each time as VABench does; the two alternate clip by clip. Without
``MOVA_EVAL_VICLIP`` only ours is timed. ``--layers`` reduces the depth of both towers (24 / 12 at full size) for a
quick run; the printed ratio is only meaningful at the same depth on both sides. Peak RSS is this process's VmHWM at
the end (both models loaded).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--layers", type=int, default=24, help="vision layers (text layers: half, at least 1)")
    a = ap.parse_args(argv)
    import numpy as np
    import torch

    from mova_eval.metrics import clip_video_viclip as cvv
    from mova_eval.metrics.features import clip_bpe
    from mova_eval.metrics.features import viclip as vc
    from mova_eval.spec import Clip, SuiteItem

    cfg = vc.ViClipConfig(vision_layers=a.layers, text_layers=max(1, a.layers // 2))
    torch.manual_seed(0)
    net = vc.ViClip(cfg).eval()
    ref = None
    if os.environ.get("MOVA_EVAL_VICLIP"):
        from tests.metrics import test_clip_video_viclip as T
        from tests.metrics import viclip_ref

        viclip_ref.import_reference()
        import viclip.viclip as rv
        import viclip.viclip_text as rt
        import viclip.viclip_vision as rvis

        rv.clip_joint_l14 = lambda **kw: rvis.VisionTransformer(
            input_resolution=224, patch_size=14, width=1024, layers=cfg.vision_layers, heads=16, output_dim=768,
            kernel_size=1, num_frames=8, drop_path=kw["drop_path"], checkpoint_num=kw["checkpoint_num"]).eval()
        rv.clip_text_l14 = lambda **kw: rt.CLIP_TEXT(768, kw["context_length"], kw["vocab_size"], 768, 12,
                                                     cfg.text_layers, 0).eval()
        ref = rv.ViCLIP(pretrain=None)
        T._seed_(ref, 5)
        ref = ref.to(a.device)
        net.load_state_dict(ref.state_dict(), strict=True)
    net = net.to(a.device)
    m = cvv.ClipVideoViclipMetric(device=a.device)
    m._net, m._tok = net, clip_bpe.shared(str(clip_bpe.vocab_path()))
    item = SuiteItem(id="b", category="c", prompt="A red car drives past a barking dog in the rain.")
    g = np.random.default_rng(0)
    clips = [Clip(path=f"b{i}", content_hash=str(i), video=g.integers(0, 255, (192, 352, 640, 3), dtype=np.uint8),
                  fps=24.0, audio=None, sample_rate=None, duration=8.0) for i in range(a.clips)]
    prepared = [cvv.prepare(c)[0] for c in clips]

    def reference_score(x):
        with torch.no_grad():
            t = ref.encode_text(item.prompt)
            v = ref.encode_vision(x[None].to(a.device), test=True)
            v, t = v / v.norm(dim=-1, keepdim=True), t / t.norm(dim=-1, keepdim=True)
            return float((v @ t.T).item())

    m.score(clips[0], item)  # warm-up (allocator, kernels)
    if ref is not None:
        reference_score(prepared[0])
    # alternate ours / reference clip by clip, so that a change in the machine's load hits both sides alike
    t_ours = t_ref = 0.0
    ours, refs = [], []
    for c, x in zip(clips, prepared):
        t0 = time.perf_counter()
        ours.append(m.score(c, item).values["clip_video_viclip"])
        t_ours += time.perf_counter() - t0
        if ref is not None:
            t0 = time.perf_counter()
            refs.append(reference_score(x))
            t_ref += time.perf_counter() - t0
    print(f"     ours: {a.clips / t_ours:.3f} clips/s (decoded clip → value), device {a.device}, "
          f"{cfg.vision_layers}+{cfg.text_layers} layers")
    if ref is not None:
        print(f"reference: {a.clips / t_ref:.3f} clips/s (network on prepared frames only); ours/reference "
              f"{t_ref / t_ours:.2f}×; max |Δ| {max(abs(x - y) for x, y in zip(ours, refs)):.2e}")
    rss = next(int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    print(f"peak RSS {rss:.0f} MB ({'both models' if ref is not None else 'ours only'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
