"""``feature_process`` with upstream's signature and return layout (visual features, text features, the video's
length in seconds). The visual "features" are each frame's mean brightness, read from the file it is given."""
from __future__ import annotations

from types import SimpleNamespace

from hunyuanvideo_foley import CALLS

DEFAULT_NEGATIVE_PROMPT = "noisy, harsh"


def feature_process(video_path, prompt, model_dict, cfg, neg_prompt=None):
    import torch

    from mova_eval import media

    if neg_prompt is None:
        neg_prompt = DEFAULT_NEGATIVE_PROMPT
    CALLS.append(("feature_process", dict(video_path=video_path, prompt=prompt, neg_prompt=neg_prompt)))
    clip = media.decode(video_path, audio=False)
    brightness = torch.from_numpy(clip.video.reshape(clip.video.shape[0], -1).mean(axis=1) / 255.0).float()
    words = prompt.split()[: cfg.model_config.model_kwargs.text_length]
    visual = SimpleNamespace(brightness=brightness)
    text = SimpleNamespace(text_feat=words, uncond_text_feat=neg_prompt.split())
    return visual, text, clip.video.shape[0] / clip.fps
