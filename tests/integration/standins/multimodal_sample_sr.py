"""MM-Diffusion's py_scripts/multimodal_sample_sr.py output layout: OUTPUT_DIR/<model>/sr_mp4/<fn>_samples_*.mp4."""
import argparse
import os

import numpy as np

from mova_eval import media

p = argparse.ArgumentParser()
p.add_argument("--output_dir")
p.add_argument("--all_save_num", type=int)
p.add_argument("--seed", type=int)
p.add_argument("--sample_fn")
p.add_argument("--multimodal_model_path")
args, _ = p.parse_known_args()
name = os.path.basename(args.multimodal_model_path).split(".")[0]
out = os.path.join(args.output_dir, name, "sr_mp4")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(args.seed)
for i in range(args.all_save_num):
    frames = rng.integers(0, 255, size=(16, 32, 32, 3), dtype=np.uint8)
    media.encode(os.path.join(out, f"{args.sample_fn}_samples_0_0_{i}.mp4"), frames, 10.0,
                 np.zeros((1, 25600), np.float32), 16000)
