"""A stand-in with MOVA's pipeline interface (``from_pretrained``, offload methods, ``audio_sample_rate`` and the
``__call__`` signature of ``pipeline_mova.MOVA``) for the adapter's in-process and torchrun tests. It is not MOVA:
each call all-reduces one value over the context-parallel group, so a clip's brightness proves every rank took
part, and it writes a trace file per rank so the tests can see who computed and who wrote."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist


class TinyMova:
    audio_sample_rate = 16000

    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint
        self.offload = "none"

    @classmethod
    def from_pretrained(cls, path, torch_dtype=None):
        return cls(str(path))

    def to(self, device):
        self.offload = f"none:{device}"
        return self

    def enable_model_cpu_offload(self, rank):
        self.offload = "cpu"

    def enable_group_offload(self, **kw):
        self.offload = "group"

    def __call__(self, prompt, negative_prompt, num_frames, image, height, width, video_fps, num_inference_steps,
                 sigma_shift, cfg_scale, seed, cp_mesh, remove_video_dit):
        rank = dist.get_rank() if dist.is_initialized() else 0
        contrib = torch.tensor([float(rank + 1)])
        if cp_mesh is not None and cp_mesh.size() > 1:
            dist.all_reduce(contrib, group=cp_mesh.get_group())
        trace = os.environ.get("TINY_MOVA_TRACE")
        if trace:
            Path(trace).mkdir(parents=True, exist_ok=True)
            with open(Path(trace) / f"rank{rank}.jsonl", "a") as f:
                f.write(json.dumps({"rank": rank, "prompt": prompt, "seed": seed, "contrib": contrib.item(),
                                    "image_size": list(image.size), "steps": num_inference_steps,
                                    "cfg": cfg_scale, "offload": self.offload}) + "\n")
        g = torch.Generator().manual_seed(int(seed))
        noise = 0.05 * torch.rand(num_frames, height, width, 3, generator=g)
        video = (0.1 * contrib + noise).clamp(0, 1)[None]            # [1, T, H, W, 3] in [0, 1]
        n = int(self.audio_sample_rate * num_frames / video_fps)
        t = torch.arange(n) / self.audio_sample_rate
        audio = (0.3 * torch.sin(2 * torch.pi * 440.0 * t))[None, None]  # [1, 1, N]
        return video, audio


class TinyMovaDual(TinyMova):
    """A MOVA build that implements dual CFG (keyword ``cfg_mode`` and ``dual_cfg_scale``)."""

    def __call__(self, *a, cfg_mode="text", dual_cfg_scale=None, **kw):
        self.last_dual = (cfg_mode, dual_cfg_scale)
        return super().__call__(*a, **kw)
