"""clip_video throughput (clips/s) and peak RSS on 8 s 640×352 clips, against open_clip's ViT-B-32-quickgelu.

    python benchmarks/clip_video_speed.py [--clips 2] [--device cpu|cuda]

Both sides use the same seeded random weights in the OpenAI layout. Ours is timed from the decoded clip (frame
selection, resize, crop) to the value; open_clip (imported behind tests/stubs/torchvision_stub.py) on the same
prepared frames only. Peak RSS is this process's VmHWM at the end (both models loaded).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    import numpy as np
    import torch
    import transformers  # noqa: F401  (before the stub, environment.md §3)

    from mova_eval.metrics import clip_video
    from mova_eval.metrics.features import clip_bpe
    from mova_eval.metrics.features import clip_vit as cv
    from mova_eval.spec import Clip, SuiteItem
    from tests.stubs import torchvision_stub

    torchvision_stub.install()
    import open_clip

    torch.manual_seed(0)
    ref = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval().to(a.device)
    net = cv.ClipModel().eval()
    net.load_state_dict(ref.state_dict())
    net = net.to(a.device)
    m = clip_video.ClipVideoMetric(device=a.device)
    m._net, m._tok = net, clip_bpe.shared(str(clip_bpe.vocab_path()))
    item = SuiteItem(id="b", category="c", prompt="A red car drives past a barking dog in the rain.")
    g = np.random.default_rng(0)
    clips = [Clip(path=f"b{i}", content_hash=str(i), video=g.integers(0, 255, (192, 352, 640, 3), dtype=np.uint8),
                  fps=24.0, audio=None, sample_rate=None, duration=8.0) for i in range(a.clips)]
    t0 = time.perf_counter()
    ours = [m.score(c, item).values["clip_video"] for c in clips]
    t_ours = time.perf_counter() - t0
    prepared = [clip_video.prepare(c)[0] for c in clips]
    ids = torch.tensor([m._tok(item.prompt, "eot")[0]], device=a.device)
    t0 = time.perf_counter()
    refs = []
    with torch.inference_mode():
        for x in prepared:
            img = torch.nn.functional.normalize(ref.encode_image(x.to(a.device)), dim=-1)
            txt = torch.nn.functional.normalize(ref.encode_text(ids), dim=-1)
            refs.append(float((img @ txt[0]).mean()))
    t_ref = time.perf_counter() - t0
    rss = next(int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    print(f"     ours: {a.clips / t_ours:.3f} clips/s (frames from the decoded clip → value), device {a.device}")
    print(f"open_clip: {a.clips / t_ref:.3f} clips/s (network on prepared frames only)")
    print(f"peak RSS {rss:.0f} MB (both models); max |Δ| {max(abs(x - y) for x, y in zip(ours, refs)):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
