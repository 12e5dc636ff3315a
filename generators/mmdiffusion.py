"""MM-Diffusion (researchmm/MM-Diffusion): unconditional joint video+audio (Landscape or AIST++), a row for the
distribution metrics (FVD, FAD…), ``generator=mmdiffusion_landscape`` / ``generator=mmdiffusion_aist``.

The model takes no prompt: a batch of requests becomes one run of the repo's ``py_scripts/multimodal_sample_sr.py``
(64x64 base model + super-resolution to 256x256, 16 frames at 10 fps = 1.6 s, 16 kHz audio) with
``--all_save_num`` = the batch size, and the i-th SR sample fills the i-th request. The items' prompts are ignored
(recorded as such), so per-item text metrics are meaningless for this row. Docs: docs/generators/mmdiffusion.md.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mova_eval.errors import ConfigError
from mova_eval.generators.base import Capabilities, ModelGenerator, ModelSettings
from mova_eval.generators.settings import model, output, runtime
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest, GenResult

INSTALL = ("git clone https://github.com/researchmm/MM-Diffusion && pip install -r MM-Diffusion/requirements.txt "
           "(+ mpi4py); checkpoints: see the repo README (Landscape / AIST++ base and SR models)")
SCRIPT = "py_scripts/multimodal_sample_sr.py"
MODEL_FLAGS = ["--cross_attention_resolutions", "2,4,8", "--cross_attention_windows", "1,4,8",
               "--cross_attention_shift", "True", "--video_attention_resolutions", "2,4,8",
               "--audio_attention_resolutions", "-1", "--video_size", "16,3,64,64", "--audio_size", "1,25600",
               "--learn_sigma", "False", "--num_channels", "128", "--num_head_channels", "64", "--num_res_blocks", "2",
               "--resblock_updown", "True", "--use_fp16", "True", "--use_scale_shift_norm", "True"]
SR_FLAGS = ["--sr_attention_resolutions", "8,16,32", "--large_size", "256", "--small_size", "64",
            "--sr_learn_sigma", "True", "--sr_num_channels", "192", "--sr_num_heads", "4", "--sr_num_res_blocks", "2",
            "--sr_resblock_updown", "True", "--sr_use_scale_shift_norm", "True"]


@dataclass(frozen=True)
class MMDiffusionSettings(ModelSettings):
    """ssh_scripts/multimodal_sample_sr.sh's settings."""

    dataset: str = output("landscape", "landscape | aist (names the trained model)")
    repo_path: str | None = runtime(None, "a checkout of https://github.com/researchmm/MM-Diffusion")
    multimodal_model_path: str | None = model(None, "the base model checkpoint")
    sr_model_path: str | None = model(None, "the super-resolution checkpoint")
    width: int | None = output(256)
    height: int | None = output(256)
    num_frames: int | None = output(16, "1.6 s at 10 fps; audio 25600 samples at 16 kHz")
    fps: float | None = output(10.0)
    sample_fn: str = output("dpm_solver")
    diffusion_steps: int = output(1000)
    sr_sample_fn: str = output("ddim")
    sr_timestep_respacing: str = output("ddim25")
    sample_batch_size: int = output(4, "the script's sampling batch (it shapes the random streams)")
    seed: int = output(42, "one seed per batch (unconditional samples)")
    ignore_first_frame: bool = output(True, "unconditional: first frames play no part")
    gpus: int = runtime(1)
    launcher: str = runtime("mpiexec -n {gpus}")
    python: str | None = runtime(None)
    worker_timeout_s: float = runtime(4 * 3600.0)


class MMDiffusion(ModelGenerator):
    __abstract__ = True
    adapter_version = "1"
    Settings = MMDiffusionSettings
    capabilities = Capabilities(modes=("t2va", "it2va"), resolutions=((256, 256),), fps=(10.0,), max_duration_s=1.6)

    @classmethod
    def _more_availability(cls, s: MMDiffusionSettings) -> Availability:
        repo = s.repo_path
        if not repo or not (Path(str(repo)).expanduser() / SCRIPT).is_file():
            return Availability(False, f"MM-Diffusion repo not found (generator.repo_path={repo})", INSTALL)
        for key in ("multimodal_model_path", "sr_model_path"):
            value = getattr(s, key)
            if not value or not Path(str(value)).expanduser().is_file():
                return Availability(False, f"generator.{key} is not a file ({value})", INSTALL)
        return Availability(True)

    def checkpoint_ref(self) -> str | None:
        return self.settings.multimodal_model_path

    def format_prompt(self, req: GenRequest) -> str:
        return ""  # unconditional

    def _load(self) -> None:
        av = self._more_availability(self.settings)
        if not av.ok:
            raise ConfigError(f"{av.reason}; install: {av.command}")
        self.repo = Path(str(self.settings.repo_path)).expanduser().resolve()
        for key in ("multimodal_model_path", "sr_model_path"):
            self.record_fingerprint(key, Path(str(getattr(self.settings, key))).expanduser())

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not self._loaded:
            self.load()
        if self._load_error:
            return [GenResult(r.request_id, None, f"{self.name} is not available: {self._load_error}") for r in requests]
        from mova_eval.errors import MovaEvalError

        results: dict[str, GenResult] = {}
        todo = []
        for r in requests:
            try:
                todo.append((r, self.plan(r)))
            except MovaEvalError as e:
                results[r.request_id] = GenResult(r.request_id, None, f"{type(e).__name__}: {e}")
        if todo:
            for res in self._run([r for r, _ in todo], [p for _, p in todo]):
                results[res.request_id] = res
        return [results[r.request_id] for r in requests]

    def _run(self, requests: list[GenRequest], plans) -> list[GenResult]:
        s = self.settings
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="mmdiffusion-") as d:
            gpus = int(s.gpus or 1)
            seed = plans[0].seed
            args = [SCRIPT, *MODEL_FLAGS, *SR_FLAGS, "--diffusion_steps", str(s.diffusion_steps),
                    "--noise_schedule", "linear", "--all_save_num", str(len(requests)), "--save_type", "mp4",
                    "--devices", ",".join(map(str, range(gpus))), "--batch_size", str(s.sample_batch_size),
                    "--is_strict", "True", "--sample_fn", s.sample_fn, "--sr_diffusion_steps", "1000",
                    "--sr_sample_fn", s.sr_sample_fn, "--sr_timestep_respacing", s.sr_timestep_respacing,
                    "--seed", str(seed), "--ref_path", "", "--output_dir", d,
                    "--multimodal_model_path", str(Path(str(s.multimodal_model_path)).expanduser().resolve()),
                    "--sr_model_path", str(Path(str(s.sr_model_path)).expanduser().resolve())]
            py = s.python or sys.executable
            launcher = shlex.split(s.launcher.format(gpus=gpus)) if gpus > 1 else []
            p = subprocess.run([*launcher, py, *args], cwd=self.repo, capture_output=True, text=True,
                               timeout=s.worker_timeout_s)
            made = sorted(Path(d).glob("*/sr_mp4/*.mp4"))
            wall = (time.perf_counter() - t0) / max(1, len(requests))
            out: list[GenResult] = []
            for i, (req, plan) in enumerate(zip(requests, plans)):
                if i >= len(made):
                    tail = (p.stderr or p.stdout or "")[-1000:]
                    out.append(GenResult(req.request_id, None, f"MM-Diffusion made {len(made)} samples for "
                                         f"{len(requests)} requests (exit {p.returncode}): {tail}"))
                    continue
                Path(req.out_path).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(made[i]), req.out_path)
                prov = self.provenance(req, plan, wall, None)
                prov.update({"unconditional": True, "prompt_ignored": req.item.prompt, "sample": made[i].name,
                             "batch_seed": seed})
                out.append(GenResult(req.request_id, str(req.out_path), None, prov))
        return out


class MMDiffusionLandscape(MMDiffusion):
    name = "mmdiffusion_landscape"


class MMDiffusionAIST(MMDiffusion):
    name = "mmdiffusion_aist"
