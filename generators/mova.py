"""MOVA in-process (OpenMOSS/MOVA): ``generator=mova_360p`` / ``generator=mova_720p``.

Drives ``mova.diffusion.pipelines.pipeline_mova.MOVA`` with the arguments of MOVA's ``scripts/inference_single.py``
(defaults: 193 frames at 24 fps, 50 steps, CFG 5.0 on both modalities, seed 42). One GPU runs in this process;
``generator.gpus=N`` launches a ``torchrun`` worker (see ``_mova_worker``) for the whole batch, where rank 0 of
each context-parallel group writes and the other ranks only compute. IT2VA with the item's first frame; T2VA
with a pure-white first frame, as MOVA's workflow does. Docs: docs/generators/mova.md.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mova_eval.errors import GenerationError
from mova_eval.generators.base import Capabilities, ModelGenerator, ModelSettings, Plan, fingerprint
from mova_eval.generators.checkpoints import require, resolve_checkpoint, weights_ready
from mova_eval.generators.settings import model, output, runtime
from mova_eval.metrics.base import Availability
from mova_eval.spec import GenRequest, GenResult

INSTALL = ("git clone https://github.com/OpenMOSS/MOVA && pip install -e ./MOVA   "
           "(Python >= 3.12; MOVA is not on PyPI)")
FETCH = "huggingface-cli download {repo} --local-dir ./weights/{name}"
WORKER_PYTHON = (3, 12)
WORKER_INSTALL = ("pip install -e ./MOVA av && pip install --no-deps -e /path/to/mova-eval "
                  "(docs/generators/mova.md, two environments)")


NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
            "残缺的，多余的手指")


@dataclass(frozen=True)
class MovaSettings(ModelSettings):
    """``scripts/inference_single.py``'s arguments, plus how the pipeline is placed on GPUs (runtime only)."""

    checkpoint: str | None = model(None, "a local folder; null = the preset's Hugging Face id")
    pipeline_factory: str | None = model(None, '"module:callable(checkpoint, torch_dtype=...)"; null = '
                                               "MOVA.from_pretrained")
    num_frames: int | None = output(193, "(num_frames - 1) % 4 == 0; 193 / 24 fps = 8.04 s")
    fps: float | None = output(24.0)
    num_inference_steps: int = output(50)
    cfg_scale: float = output(5.0, "one text CFG scale applied to video and audio")
    sigma_shift: float = output(5.0, "passed like upstream (the released pipeline's scheduler config decides)")
    dual_cfg_scale: float | None = output(None, "the paper's s_B; refused unless the installed MOVA has dual CFG")
    negative_prompt: str | None = output(NEGATIVE)
    seed: int = output(42, "seeds=[0] → 42, the toolkit default")
    dtype: str = output("bfloat16", "torch dtype of the weights")
    offload: Literal["none", "cpu", "group"] = runtime("cpu", "none | cpu (component-wise) | group (layer-wise)")
    offload_to_disk_path: str | None = runtime(None)
    remove_video_dit: bool = runtime(False, "free the high-noise expert after the switch (memory only)")
    gpus: int = runtime(1, ">1: a torchrun worker over the batch")
    cp_size: int | None = runtime(None, "context-parallel degree; null = gpus")
    attn_type: str = runtime("fa", "attention kernel")
    python: str | None = runtime(None, "the MOVA environment's bin/python: the worker runs there, even on one GPU "
                                       "(default: in this process / this interpreter)")
    worker_timeout_s: float | None = runtime(None, "torchrun timeout (default: one hour per clip)")


class MovaGenerator(ModelGenerator):
    """Shared by the presets; each preset fixes the checkpoint's trained resolution. The model is named by its
    Hugging Face id (the preset name) and pinned by the checkpoint fingerprint, so moving the weights folder does
    not invalidate cached clips."""

    __abstract__ = True
    adapter_version = "1"
    Settings = MovaSettings
    requires = (("mova", INSTALL),)
    hf_repo: str = ""

    @classmethod
    def _availability(cls, s: MovaSettings) -> Availability:
        """With ``generator.python`` the packages are looked for in that environment, not in this one."""
        if not s.python:
            return super()._availability(s)
        from mova_eval.generators.interpreter import InterpreterError

        try:
            cls.probe_worker_python(s)
        except InterpreterError as e:
            return Availability(False, str(e), INSTALL)
        return cls._more_availability(s)

    @classmethod
    def probe_worker_python(cls, s: MovaSettings):
        """Check ``generator.python`` for the worker: Python >= 3.12 for the real MOVA (its pyproject), and the
        packages the worker imports there (``mova_eval`` writes the clip through its media module)."""
        from mova_eval.generators.interpreter import probe

        model = (s.pipeline_factory or "mova").split(":")[0].split(".")[0]
        return probe(s.python, min_version=None if s.pipeline_factory else WORKER_PYTHON, needed_by="the MOVA worker",
                     modules=(model, "torch", "numpy", "av", "mova_eval"), install=WORKER_INSTALL)

    @classmethod
    def _more_availability(cls, s: MovaSettings) -> Availability:
        if s.pipeline_factory:
            return Availability(True)
        return weights_ready(s.checkpoint or cls.hf_repo, FETCH.format(repo=cls.hf_repo, name=cls.name))

    def checkpoint_ref(self) -> str:
        return str(self.settings.checkpoint or self.hf_repo)

    def package_version(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mova")
        except PackageNotFoundError:
            return None

    # ------------------------------------------------------------------ load
    def _load(self) -> None:
        s = self.settings
        self._factory = s.pipeline_factory
        self._python = sys.executable
        if s.python:  # the model's own environment: checked there, nothing of MOVA is imported here
            self._python = self.probe_worker_python(s).path
        elif not self._factory:  # the real pipeline: the package must be importable
            require("mova.diffusion.pipelines.pipeline_mova", "MOVA", INSTALL)
        ckpt = self.checkpoint_ref()
        self._ckpt_path = ckpt if self._factory and not Path(ckpt).exists() else \
            str(resolve_checkpoint(ckpt, self.name, FETCH.format(repo=self.hf_repo, name=self.name),
                                   offline=self.context.offline))
        if Path(self._ckpt_path).exists():
            self.record_fingerprint("checkpoint", self._ckpt_path)
        self._gpus = int(s.gpus or 1)
        self._pipe = self._mesh = None
        self._worker = self._gpus > 1 or bool(s.python)
        if not self._worker:
            from mova_eval.generators import _mova_worker as w

            w.init_distributed()
            self._mesh = w.make_mesh(1)
            self._pipe = w.build_pipeline(self._pipeline_cfg())

    def _pipeline_cfg(self) -> dict[str, Any]:
        s = self.settings
        return {"pipeline_factory": self._factory, "checkpoint": self._ckpt_path, "dtype": s.dtype,
                "offload": s.offload, "offload_to_disk_path": s.offload_to_disk_path,
                "cp_size": int(s.cp_size or self._gpus), "attn_type": s.attn_type, "dual_cfg_scale": s.dual_cfg_scale}

    # ------------------------------------------------------------------ plan
    def plan(self, req: GenRequest) -> Plan:
        p = super().plan(req)
        if (p.num_frames - 1) % 4:
            raise GenerationError(f"MOVA needs (num_frames - 1) % 4 == 0 (temporal VAE factor 4); got {p.num_frames}")
        if p.width % 16 or p.height % 16:
            raise GenerationError(f"MOVA needs width and height divisible by 16; got {p.width}x{p.height}")
        return p

    def _job(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        s = self.settings
        job = {"id": req.request_id, "out_path": str(req.out_path), "prompt": plan.prompt,
               "negative_prompt": s.negative_prompt or "", "first_frame": plan.first_frame,
               "width": plan.width, "height": plan.height, "num_frames": plan.num_frames, "fps": plan.fps,
               "seed": plan.seed, "num_inference_steps": s.num_inference_steps, "cfg_scale": s.cfg_scale,
               "sigma_shift": s.sigma_shift, "remove_video_dit": s.remove_video_dit}
        job["fingerprint"] = fingerprint(self.identity(), {k: v for k, v in job.items() if k != "out_path"})
        return job

    # ------------------------------------------------------------------ in-process
    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        from mova_eval.generators import _mova_worker as w

        job = self._job(req, plan)
        video, audio, sr = w.run_job(self._pipe, job, self._mesh, self.settings.dual_cfg_scale)
        w.write_output(job, video, audio, sr, {"writer_rank": 0, "world_size": 1})
        return {"audio_sample_rate": sr, "negative_prompt": job["negative_prompt"], "world_size": 1}

    # ------------------------------------------------------------------ torchrun
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not self._loaded:
            self.load()
        if self._load_error or not self._worker:
            return [self._one(r) for r in requests]
        return self._generate_torchrun(requests)

    def _generate_torchrun(self, requests: list[GenRequest]) -> list[GenResult]:
        from mova_eval.generators import _mova_worker as w

        results: dict[str, GenResult] = {}
        pending: list[tuple[GenRequest, Plan, dict]] = []
        for r in requests:
            try:
                plan = self.plan(r)
            except GenerationError as e:
                results[r.request_id] = GenResult(r.request_id, None, f"{type(e).__name__}: {e}")
                continue
            job = self._job(r, plan)
            rec = _read(w.record_path(r.out_path))
            if rec and rec.get("ok") and rec.get("fingerprint") == job["fingerprint"] and Path(r.out_path).is_file():
                results[r.request_id] = self._from_record(r, plan, rec, resumed=True)
            else:
                w.record_path(r.out_path).unlink(missing_ok=True)
                pending.append((r, plan, job))
        if pending:
            error = self._launch([job for _, _, job in pending])
            for r, plan, job in pending:
                rec = _read(w.record_path(r.out_path))
                if rec is None or rec.get("fingerprint") != job["fingerprint"]:
                    results[r.request_id] = GenResult(r.request_id, None, f"the worker wrote no result: {error}")
                elif not rec.get("ok"):
                    results[r.request_id] = GenResult(r.request_id, None, rec.get("error", "worker failed"))
                else:
                    results[r.request_id] = self._from_record(r, plan, rec, resumed=False)
        return [results[r.request_id] for r in requests]

    def _from_record(self, req: GenRequest, plan: Plan, rec: dict, resumed: bool) -> GenResult:
        prov = self.provenance(req, plan, rec.get("wall_time_s") or 0.0, rec.get("peak_gpu_memory_mb"))
        prov.update({k: rec[k] for k in ("writer_rank", "world_size", "cp_size", "sample_rate", "python")
                     if k in rec})
        if rec.get("package_version"):  # MOVA's version where the worker ran (the harness may have none)
            prov["package_version"] = rec["package_version"]
        prov["negative_prompt"] = self.settings.negative_prompt or ""
        if resumed:
            prov["resumed_from_worker_record"] = True
        return GenResult(req.request_id, str(req.out_path), None, prov)

    def _launch(self, jobs: list[dict]) -> str:
        """Run the torchrun worker over ``jobs``; returns a short error description ('' on success)."""
        spec = {"pipeline": self._pipeline_cfg(), "jobs": jobs}
        with tempfile.TemporaryDirectory(prefix="mova-jobs-") as d:
            path = Path(d) / "jobs.json"
            path.write_text(json.dumps(spec))
            cmd = [self._python, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={self._gpus}", "-m", "mova_eval.generators._mova_worker", str(path)]
            timeout = float(self.settings.worker_timeout_s or 3600 * max(1, len(jobs)))
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return f"torchrun timed out after {timeout:.0f} s"
            if p.returncode:
                from mova_eval.generators.interpreter import crash_message

                return crash_message(f"the worker ({self._python} -m torch.distributed.run)", p.returncode,
                                     p.stderr, p.stdout)
        return ""

    def close(self) -> None:
        self._pipe = None
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized() and self._mesh is not None:
                dist.destroy_process_group()
        except ImportError:
            pass


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class Mova360p(MovaGenerator):
    name = "mova_360p"
    hf_repo = "OpenMOSS-Team/MOVA-360p"
    capabilities = Capabilities(modes=("it2va", "t2va"), resolutions=((640, 352),), max_duration_s=193 / 24,
                                fps=(24.0,))


class Mova720p(MovaGenerator):
    name = "mova_720p"
    hf_repo = "OpenMOSS-Team/MOVA-720p"
    capabilities = Capabilities(modes=("it2va", "t2va"), resolutions=((1280, 720),), max_duration_s=193 / 24,
                                fps=(24.0,))
