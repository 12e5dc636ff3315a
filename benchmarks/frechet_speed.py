"""FVD/FAD throughput and memory on this machine (run by hand; never a timed test).

    python benchmarks/frechet_speed.py                 # all figures, seeded random weights where real ones are absent
    python benchmarks/frechet_speed.py --clips 600 --extract vggish   # stream real extraction for 600 synthetic clips

Prints: features/s of each extractor on CPU (I3D ours, I3D TorchScript if its file is present, VGGish, CLAP fusion
(fad_clap's 10 s windows), PANNs Cnn14 if that module is installed); the time of one Fréchet distance between two
10,000 × 2,048 feature sets (statistics accumulation and the distance separately); and the peak RSS while streaming N clips' features into the statistics
(only features are kept, never clips). Speed does not depend on weight values, so random weights give true timings.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timeit(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_extractors(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from mova_eval.metrics.features import i3d, vggish

    print(f"extractors (CPU, {threads} threads, batch 1):")
    net = i3d.build_i3d().eval()
    x = torch.zeros(1, 3, 16, 224, 224)
    with torch.no_grad():
        t = _timeit(lambda: net(x), repeat=2)
    print(f"  I3D (ours, 16×224² clip)        {1 / t:8.2f} clips/s   ({t * 1000:.0f} ms/clip)")
    from mova_eval import weights
    from mova_eval.errors import WeightsMissingError

    try:
        ts = i3d.load_torchscript(weights.resolve("i3d_torchscript"))
        u8 = torch.zeros(1, 3, 16, 256, 256, dtype=torch.uint8)
        with torch.no_grad():
            t = _timeit(lambda: ts(u8, rescale=True, resize=True, return_features=True), repeat=2)
        print(f"  I3D TorchScript (StyleGAN-V)    {1 / t:8.2f} clips/s")
    except WeightsMissingError:
        print("  I3D TorchScript (StyleGAN-V)    skipped: i3d_torchscript.pt absent (mova-eval weights fetch i3d_torchscript)")
    v = vggish.build_vggish().eval()
    wave = np.random.default_rng(0).normal(size=8 * 16_000) * 0.1
    t_front = _timeit(lambda: vggish.log_mel_examples(wave))
    t = _timeit(lambda: vggish.embed(v, wave))
    print(f"  VGGish (8 s clip = 8 examples)  {8 / t:8.1f} examples/s  ({1 / t:.2f} clips/s; log-mel {t_front * 1000:.1f} ms)")
    bench_clap()
    try:
        from mova_eval.metrics.features import panns  # noqa: F401
    except ImportError:
        print("  PANNs Cnn14 16 kHz              skipped: mova_eval.metrics.features.panns is not installed")
        return
    try:
        m = panns.load_cnn14(sample_rate=16_000, device="cpu")
        w = torch.zeros(1, 8 * 16_000)
        with torch.no_grad():
            t = _timeit(lambda: m(w), repeat=2)
        print(f"  PANNs Cnn14 16 kHz (8 s clip)   {1 / t:8.2f} clips/s")
    except Exception as e:  # weights absent here
        print(f"  PANNs Cnn14 16 kHz              skipped: {type(e).__name__}: {e}")


def bench_clap() -> None:
    """fad_clap's extractor: fadtk's 10 s windows every 1 s through the CLAP fusion audio tower (random weights)."""
    try:
        from mova_eval.metrics import clap, fad

        m = fad.FADClap({})
        m.model = clap.ClapEncoder(clap.build_clap_model(None), None)
    except ImportError as e:
        print(f"  CLAP fusion (fad_clap)          skipped: {e}")
        return
    wave = np.random.default_rng(0).normal(size=8 * 48_000) * 0.1
    t = _timeit(lambda: m.embed(wave), repeat=1)
    print(f"  CLAP fusion, fad_clap (8 s clip = 8 windows of 10 s)  {8 / t:6.2f} windows/s  ({1 / t:.3f} clips/s)")


def bench_frechet(n: int, d: int) -> None:
    from mova_eval.metrics import frechet

    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, d)).astype(np.float32)
    b = (rng.normal(size=(n, d)) * 1.1 + 0.05).astype(np.float32)
    t0 = time.perf_counter()
    sa, sb = frechet.GaussianStats.of(a), frechet.GaussianStats.of(b)
    t_stats = (time.perf_counter() - t0) / 2
    for method in frechet.TRACE_METHODS:
        t0 = time.perf_counter()
        v = frechet.frechet_from_stats(sa, sb, method=method)
        print(f"Fréchet distance {n:,} × {d:,}: stats {t_stats:.2f} s per set, distance ({method}) "
              f"{time.perf_counter() - t0:.2f} s  (value {v:.4f})")


def bench_stream(clips: int, extract: str | None) -> None:
    """Peak RSS while features of `clips` clips stream into running statistics (clips are dropped at once)."""
    from mova_eval.metrics import frechet

    rng = np.random.default_rng(1)
    before = _rss_mb()
    shapes = {"fvd_i3d": (1, 400), "fad_vggish": (8, 128), "fad_panns": (1, 2048), "fad_clap": (8, 512)}
    stats = {k: frechet.GaussianStats(s[1]) for k, s in shapes.items()}
    model = None
    if extract == "vggish":
        from mova_eval.metrics.features import vggish

        model = vggish.build_vggish().eval()
    t0 = time.perf_counter()
    for _ in range(clips):
        audio = rng.normal(size=8 * 16_000).astype(np.float32) * 0.1  # one 8 s clip exists at a time
        for k, (rows, dim) in shapes.items():
            if k == "fad_vggish" and model is not None:
                from mova_eval.metrics.features import vggish

                f = vggish.embed(model, audio)
            else:
                f = rng.normal(size=(rows, dim))
            stats[k].update(f)
        del audio
    dt = time.perf_counter() - t0
    print(f"streaming {clips} clips ({'VGGish extraction' if model is not None else 'feature arrays as from the cache'}):"
          f" {dt:.1f} s, peak RSS {_rss_mb():.0f} MB (was {before:.0f} MB before streaming); "
          + ", ".join(f"{k}: n={s.n}" for k, s in stats.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--clips", type=int, default=600)
    p.add_argument("--extract", choices=["vggish"], default=None)
    p.add_argument("--skip-extractors", action="store_true")
    a = p.parse_args()
    bench_stream(a.clips, a.extract)  # first: ru_maxrss is the process peak, so nothing bigger may run before it
    if not a.skip_extractors:
        bench_extractors(a.threads)
    bench_frechet(a.n, a.dim)


if __name__ == "__main__":
    main()
