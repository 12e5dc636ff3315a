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
from pathlib import Path
from typing import Any

from mova_eval.errors import ConfigError, GenerationError
from mova_eval.generators._common import (ModelGenerator, Plan, checkpoint_fingerprint, fingerprint,
                                          require, resolve_checkpoint, weights_ready)
from mova_eval.generators.base import Capabilities
from mova_eval.spec import GenRequest, GenResult

INSTALL = ("git clone https://github.com/OpenMOSS/MOVA && pip install -e ./MOVA   "
           "(Python >= 3.12; MOVA is not on PyPI)")
FETCH = "huggingface-cli download {repo} --local-dir ./weights/{name}"


class MovaGenerator(ModelGenerator):
    """Shared by the presets; each preset fixes the checkpoint's trained resolution."""

    __abstract__ = True
    adapter_version = "1"
    requires = (("mova", INSTALL),)
    hf_repo: str = ""

    @classmethod
    def _more_availability(cls, config):
        if config.get("pipeline_factory"):
            return True, "", None
        return weights_ready(config.get("checkpoint") or cls.hf_repo, FETCH.format(repo=cls.hf_repo, name=cls.name))

    def checkpoint_ref(self) -> str:
        return str(self.config.get("checkpoint") or self.hf_repo)

    def identity(self) -> dict[str, Any]:
        """The model is named by its Hugging Face id and pinned by the checkpoint fingerprint, so moving the
        weights folder does not invalidate cached clips."""
        return {**super().identity(), "model": self.hf_repo}

    def package_version(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mova")
        except PackageNotFoundError:
            return None

    def sampler_settings(self) -> dict[str, Any]:
        keys = ("num_frames", "fps", "width", "height", "num_inference_steps", "cfg_scale", "sigma_shift",
                "negative_prompt", "dual_cfg_scale", "seed", "dtype")
        return {k: self.config.get(k) for k in keys}

    # ------------------------------------------------------------------ load
    def _load(self) -> None:
        cfg = self.config
        if cfg.get("offload", "none") not in ("none", "cpu", "group"):
            raise ConfigError(f"generator.offload must be none, cpu or group; got {cfg.get('offload')!r}")
        self._factory = cfg.get("pipeline_factory")
        if not self._factory:  # the real pipeline: the package must be importable
            require("mova.diffusion.pipelines.pipeline_mova", "MOVA", INSTALL)
        ckpt = self.checkpoint_ref()
        self._ckpt_path = ckpt if self._factory and not Path(ckpt).exists() else \
            str(resolve_checkpoint(ckpt, self.name, FETCH.format(repo=self.hf_repo, name=self.name)))
        if Path(self._ckpt_path).exists():
            self._ckpt_hash = checkpoint_fingerprint(self._ckpt_path)
        self._gpus = int(cfg.get("gpus") or 1)
        self._pipe = self._mesh = None
        if self._gpus == 1:
            from mova_eval.generators import _mova_worker as w

            w.init_distributed()
            self._mesh = w.make_mesh(1)
            self._pipe = w.build_pipeline(self._pipeline_cfg())

    def _pipeline_cfg(self) -> dict[str, Any]:
        cfg = self.config
        return {"pipeline_factory": self._factory, "checkpoint": self._ckpt_path, "dtype": cfg.get("dtype", "bfloat16"),
                "offload": cfg.get("offload", "none"), "offload_to_disk_path": cfg.get("offload_to_disk_path"),
                "cp_size": int(cfg.get("cp_size") or self._gpus), "attn_type": cfg.get("attn_type", "fa"),
                "dual_cfg_scale": cfg.get("dual_cfg_scale")}

    # ------------------------------------------------------------------ plan
    def plan(self, req: GenRequest) -> Plan:
        p = super().plan(req)
        if (p.num_frames - 1) % 4:
            raise GenerationError(f"MOVA needs (num_frames - 1) % 4 == 0 (temporal VAE factor 4); got {p.num_frames}")
        if p.width % 16 or p.height % 16:
            raise GenerationError(f"MOVA needs width and height divisible by 16; got {p.width}x{p.height}")
        return p

    def _job(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        cfg = self.config
        job = {"id": req.request_id, "out_path": str(req.out_path), "prompt": plan.prompt,
               "negative_prompt": cfg.get("negative_prompt") or "", "first_frame": plan.first_frame,
               "width": plan.width, "height": plan.height, "num_frames": plan.num_frames, "fps": plan.fps,
               "seed": plan.seed, "num_inference_steps": int(cfg.get("num_inference_steps", 50)),
               "cfg_scale": float(cfg.get("cfg_scale", 5.0)), "sigma_shift": float(cfg.get("sigma_shift", 5.0)),
               "remove_video_dit": bool(cfg.get("remove_video_dit", False))}
        job["fingerprint"] = fingerprint(self.identity(), {k: v for k, v in job.items() if k != "out_path"})
        return job

    # ------------------------------------------------------------------ in-process
    def _make(self, req: GenRequest, plan: Plan) -> dict[str, Any]:
        from mova_eval.generators import _mova_worker as w

        job = self._job(req, plan)
        video, audio, sr = w.run_job(self._pipe, job, self._mesh, self.config.get("dual_cfg_scale"))
        w.write_output(job, video, audio, sr, {"writer_rank": 0, "world_size": 1})
        return {"audio_sample_rate": sr, "negative_prompt": job["negative_prompt"], "world_size": 1}

    # ------------------------------------------------------------------ torchrun
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not self._loaded:
            self.load()
        if self._load_error or self._gpus == 1:
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
                    results[r.request_id] = GenResult(r.request_id, None, f"torchrun worker wrote no result: {error}")
                elif not rec.get("ok"):
                    results[r.request_id] = GenResult(r.request_id, None, rec.get("error", "worker failed"))
                else:
                    results[r.request_id] = self._from_record(r, plan, rec, resumed=False)
        return [results[r.request_id] for r in requests]

    def _from_record(self, req: GenRequest, plan: Plan, rec: dict, resumed: bool) -> GenResult:
        prov = self.provenance(req, plan, rec.get("wall_time_s") or 0.0, rec.get("peak_gpu_memory_mb"))
        prov.update({k: rec[k] for k in ("writer_rank", "world_size", "cp_size", "sample_rate") if k in rec})
        prov["negative_prompt"] = self.config.get("negative_prompt") or ""
        if resumed:
            prov["resumed_from_worker_record"] = True
        return GenResult(req.request_id, str(req.out_path), None, prov)

    def _launch(self, jobs: list[dict]) -> str:
        """Run the torchrun worker over ``jobs``; returns a short error description ('' on success)."""
        spec = {"pipeline": self._pipeline_cfg(), "jobs": jobs}
        with tempfile.TemporaryDirectory(prefix="mova-jobs-") as d:
            path = Path(d) / "jobs.json"
            path.write_text(json.dumps(spec))
            cmd = [self.config.get("python") or sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={self._gpus}", "-m", "mova_eval.generators._mova_worker", str(path)]
            timeout = float(self.config.get("worker_timeout_s") or 3600 * max(1, len(jobs)))
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return f"torchrun timed out after {timeout:.0f} s"
            if p.returncode:
                tail = (p.stderr or p.stdout)[-1500:]
                return f"torchrun exited with {p.returncode}: {tail}"
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
