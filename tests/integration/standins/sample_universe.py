"""UniVerse-1's fastvideo/sample/sample_universe.py command line and output naming, making a 25 fps clip."""
import argparse
import json
import os

import numpy as np
from PIL import Image

from mova_eval import media

p = argparse.ArgumentParser()
for a in ("--prompt_path", "--refimg_path", "--model_path", "--transformer_path", "--ace_path", "--output_path"):
    p.add_argument(a)
p.add_argument("--num_frames", type=int)
p.add_argument("--num_inference_steps", type=int)
p.add_argument("--guidance_scale_vid", type=float)
p.add_argument("--guidance_scale_aud", type=float)
p.add_argument("--seed", type=int)
p.add_argument("--cpu_offload", action="store_true")
args = p.parse_args()
prompt = json.load(open(args.prompt_path))
assert set(prompt) == {"video_prompt", "audio_prompt", "speech_prompt"}, prompt
img = np.array(Image.open(args.refimg_path))[:, :, :3]
h, w = img.shape[:2]
sizes = [(512, 512), (480, 768), (768, 480)]
ratios = np.array([1, 480 / 768, 768 / 480])
height, width = sizes[int(np.argmin(np.abs(ratios - h / w)))]
os.makedirs(args.output_path, exist_ok=True)
with open(os.path.join(args.output_path, "args.json"), "w") as f:
    json.dump({**vars(args), "prompt": prompt}, f)
suffix = "{}_{}".format(os.path.basename(args.refimg_path).split(".")[0], os.path.basename(args.prompt_path).split(".")[0])
frames = np.full((9, height // 8, width // 8, 3), args.seed % 256, np.uint8)
audio = np.zeros((1, int(9 / 25 * 16000)), np.float32)
media.encode(os.path.join(args.output_path, f"{suffix}_h{height}_w{width}_with_audio.mp4"), frames, 25.0, audio, 16000)
