"""Throughput of the audio-semantic extractors on CPU: PANNs Cnn14 (IS / KL) and LAION-CLAP (audio and text towers).

Speed does not depend on the weights' values, so the networks are built with random weights (no download needed);
with ``--real`` the registered checkpoints are loaded instead. Prints clips/s (texts/s for the text tower).

    python benchmarks/audio_semantic_speed.py [--clips 8] [--threads 2] [--real] [--tokenizer DIR]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def _rate(fn, n: int, repeats: int = 2) -> float:
    fn()  # warm-up (allocations, first-call overheads)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8, help="clips per timed batch")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--real", action="store_true", help="load the registered checkpoints instead of random weights")
    ap.add_argument("--tokenizer", help="roberta-base tokenizer folder (without one the text tower runs on token ids)")
    args = ap.parse_args()

    import torch

    from mova_eval.metrics import clap
    from mova_eval.metrics.features import panns

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.clips
    print(f"torch {torch.__version__}, {args.threads} threads, {n} clips per batch, "
          f"{'real' if args.real else 'random'} weights")

    for sr, seconds, what in ((32000, 10.0, "Cnn14 32 kHz, 10 s clips (IS, MOVA mode)"),
                              (16000, 8.0, "Cnn14 16 kHz, 8 s clips (IS av_bench mode, KL)")):
        model = panns.load_cnn14(sr, "cpu") if args.real else panns.build_cnn14(sr, seed=0)
        x = (0.1 * rng.standard_normal((n, int(sr * seconds)))).astype(np.float32)
        r = _rate(lambda m=model, x=x: panns.run_cnn14(m, x, batch_size=n), n)
        print(f"{what:<52} {r:8.2f} clips/s")
        del model

    enc = clap.load_encoder("cpu") if args.real else clap.ClapEncoder(clap.build_clap_model(None), None)
    for seconds, label in ((8.0, "48 kHz (clap)"), (8.0 * 32 / 48, "32 kHz read as 48 kHz (clap_mova)")):
        xs = [clap.int16_roundtrip((0.1 * rng.standard_normal(int(48000 * seconds))).astype(np.float32))
              for _ in range(n)]

        def run(xs=xs):
            feats = [clap.audio_features(x, np.random.RandomState(0)) for x in xs]
            enc.audio_embeddings(torch.stack([f[0] for f in feats]), [f[1] for f in feats])

        print(f"{'CLAP audio, 8 s clips, ' + label:<52} {_rate(run, n):8.2f} clips/s")
    if enc.tokenizer is None and args.tokenizer:
        enc.tokenizer = clap.load_tokenizer(args.tokenizer)
    texts = [f"A prompt number {i} describing a busy street with rain, voices and a passing tram." * 3
             for i in range(n)]
    if enc.tokenizer is not None:
        r = _rate(lambda: enc.text_embeddings(texts), n)
    else:
        ids = torch.randint(3, 50000, (n, 77))
        mask = torch.ones_like(ids)

        def run_ids():
            with torch.inference_mode():
                enc.model.text_projection(enc.model.text_model(input_ids=ids, attention_mask=mask).pooler_output)

        r = _rate(run_ids, n)
    print(f"{'CLAP text, 77 tokens':<52} {r:8.2f} texts/s")


if __name__ == "__main__":
    main()
