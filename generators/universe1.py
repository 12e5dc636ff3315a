"""UniVerse-1 (Dorniwang/UniVerse-1-code): Wan2.1-1.3B + ACE-Step stitched, ``generator=universe1``. IT2VA only.

The release has no Python API: its ``fastvideo/sample/sample_universe.py`` (launched with torchrun) reads one
Verse-Bench-style JSON (video_prompt, audio_prompt list, speech_prompt {speaker, text}) and a reference image, picks
512x512 / 480x768 / 768x480 from the image's aspect, and writes ``{image}_{prompt}_h{H}_w{W}_with_audio.mp4``
(25 fps, 16 kHz). This adapter writes that JSON from the suite item, runs the script in ``generator.repo_path``
once per clip, and takes that file. Verse-Bench is UniVerse-1's own benchmark, so its fields pass through
unchanged. Docs: docs/generators/universe1.md.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mova_eval.errors import ConfigError, GenerationError
from mova_eval.generators.base import Capabilities, ModelGenerator, ModelSettings, Plan
from mova_eval.generators.settings import model, output, runtime
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest

INSTALL = ("git clone https://github.com/Dorniwang/UniVerse-1-code && cd UniVerse-1-code && pip install -e . "
           "(+ flash-attn); weights: huggingface-cli download dorni/UniVerse-1-Base --local-dir checkpoints/UniVerse-1-base")
SCRIPT = "fastvideo/sample/sample_universe.py"
SIZES = ((512, 512), (768, 480), (480, 768))  # (width, height) the script chooses from the image aspect


@dataclass(frozen=True)
class UniVerse1Settings(ModelSettings):
    """scripts/inference/inference_universe.sh's settings; the three model paths are relative to repo_path."""

    repo_path: str | None = runtime(None, "a checkout of https://github.com/Dorniwang/UniVerse-1-code")
    model_path: str = model("./huggingfaces/Wan-AI/Wan2.1-T2V-1.3B-Diffusers/")
    ace_path: str = model("./huggingfaces/ACE-Step/ACE-Step-v1-3.5B/")
    transformer_path: str = model("./checkpoints/UniVerse-1-base/")
    num_frames: int | None = output(125, "5 s at 25 fps")
    fps: float | None = output(25.0)
    width: int | None = output(512, "informative: the script picks the size from the first frame")
    height: int | None = output(512)
    num_inference_steps: int = output(35)
    guidance_scale_vid: float = output(1.2)
    guidance_scale_aud: float = output(5.0)
    seed: int = output(10240, "the upstream script's seed")
    cpu_offload: bool = runtime(True)
    gpus: int = runtime(1, ">1: torchrun over the script")
    python: str | None = runtime(None)
    worker_timeout_s: float = runtime(7200.0)


class UniVerse1(ModelGenerator):
    name = "universe1"
    adapter_version = "1"
    Settings = UniVerse1Settings
    capabilities = Capabilities(modes=("it2va",), fps=(25.0,), max_duration_s=125 / 25 + 1e-6)

    @classmethod
    def _more_availability(cls, s: UniVerse1Settings) -> Availability:
        repo = s.repo_path
        if not repo or not (Path(str(repo)).expanduser() / SCRIPT).is_file():
            return Availability(False, f"UniVerse-1 repo not found (generator.repo_path={repo})", INSTALL)
        return Availability(True)

    def checkpoint_ref(self) -> str | None:
        return self.settings.transformer_path

    def _load(self) -> None:
        av = self._more_availability(self.settings)
        if not av.ok:
            raise ConfigError(f"{av.reason}; install: {av.command}")
        self.repo = Path(str(self.settings.repo_path)).expanduser().resolve()
        for key in ("transformer_path", "model_path", "ace_path"):
            path = self.repo / str(getattr(self.settings, key) or "")
            if path.exists() and path != self.repo:
                self.record_fingerprint(key, path)

    def plan(self, req: GenRequest) -> Plan:
        p = super().plan(req)
        from PIL import Image

        with Image.open(p.first_frame) as im:  # the script derives the size from the image; so do we
            w, h = im.size
        ratios = [sh / sw for sw, sh in SIZES]
        sw, sh = SIZES[min(range(3), key=lambda i: abs(ratios[i] - h / w))]
        from dataclasses import replace

        return replace(p, width=sw, height=sh, prompt=json.dumps(self._prompt_json(req), ensure_ascii=False))

    def _prompt_json(self, req: GenRequest) -> dict[str, Any]:
        it = req.item
        return {"video_prompt": it.video_prompt or it.prompt, "audio_prompt": list(it.audio_prompts),
                "speech_prompt": {"speaker": it.speaker, "text": it.speech_text}}

    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        s = self.settings
        with tempfile.TemporaryDirectory(prefix="universe1-") as d:
            d = Path(d)
            (d / "prompt.json").write_text(plan.prompt, encoding="utf-8")
            img = d / ("ref" + Path(plan.first_frame).suffix.lower())
            shutil.copyfile(plan.first_frame, img)
            out_dir = d / "out"
            args = [SCRIPT, "--model_path", s.model_path, "--ace_path", s.ace_path,
                    "--transformer_path", s.transformer_path, "--num_frames", str(plan.num_frames),
                    "--num_inference_steps", str(s.num_inference_steps),
                    "--guidance_scale_vid", str(s.guidance_scale_vid),
                    "--guidance_scale_aud", str(s.guidance_scale_aud), "--seed", str(plan.seed),
                    "--output_path", str(out_dir), "--refimg_path", str(img), "--prompt_path", str(d / "prompt.json")]
            if s.cpu_offload:
                args.append("--cpu_offload")
            gpus = int(s.gpus or 1)
            py = s.python or sys.executable
            cmd = [py, *args] if gpus == 1 else [py, "-m", "torch.distributed.run", "--standalone",
                                                  f"--nproc_per_node={gpus}", *args]
            try:
                p = subprocess.run(cmd, cwd=self.repo, capture_output=True, text=True,
                                   timeout=s.worker_timeout_s)
            except subprocess.TimeoutExpired as e:
                raise GenerationError(f"UniVerse-1 script timed out after {e.timeout:.0f} s") from e
            made = sorted(out_dir.glob("*_with_audio.mp4")) if out_dir.is_dir() else []
            if p.returncode or not made:
                tail = (p.stderr or p.stdout or "")[-1200:]
                raise GenerationError(f"UniVerse-1 script failed (exit {p.returncode}, no *_with_audio.mp4): {tail}")
            Path(req.out_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(made[0]), req.out_path)
        return {"script": SCRIPT, "script_output": made[0].name}
