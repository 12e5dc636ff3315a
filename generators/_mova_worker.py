"""The MOVA pipeline loop shared by the in-process adapter and its multi-GPU ``torchrun`` worker.

Multi-GPU (``generator.gpus=N``): the adapter writes a job file and launches
``torchrun --standalone --nproc_per_node=N -m mova_eval.generators._mova_worker JOBS.json``. Every rank loads the
pipeline and takes part in every call (context parallel over the ``cp`` mesh dimension, as MOVA's
``scripts/inference_single.py`` does); ranks are split into ``dp = world // cp_size`` groups that take jobs in turn,
and only the first rank of each ``cp`` group writes a clip and its ``<clip>.worker.json`` record. The others only
compute. Records let an interrupted batch resume without regenerating finished clips.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

DEFAULT_FACTORY = "mova.diffusion.pipelines.pipeline_mova:MOVA.from_pretrained"
DUAL_CFG_PARAMS = ("dual_cfg_scale", "bridge_cfg_scale", "cfg_scale_b", "s_b")


def record_path(out_path: str | Path) -> Path:
    out = Path(out_path)
    return out.with_name(out.stem + ".worker.json")


def init_distributed():
    """Join torchrun's process group, or (in-process: one rank) create one on a free local port; MOVA's pipeline
    expects one even on one GPU. torchrun's RANK/WORLD_SIZE/LOCAL_RANK are read, never written: the in-process
    group gets its address, rank and size as arguments, so the harness's environment is left as it was."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ  # set by torchrun for each rank
        kw: dict[str, Any] = {}
        if not launched:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            kw = {"init_method": f"tcp://127.0.0.1:{port}", "rank": 0, "world_size": 1}
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0")) if launched else 0
            torch.cuda.set_device(local)
            dist.init_process_group(backend="nccl", device_id=torch.device("cuda", local), **kw)
        else:
            dist.init_process_group(backend="gloo", **kw)
    return dist.get_rank(), dist.get_world_size()


def make_mesh(cp_size: int):
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import DeviceMesh

    world = dist.get_world_size()
    if world % cp_size:
        raise ValueError(f"world size {world} is not a multiple of cp_size {cp_size}")
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    return DeviceMesh(kind, torch.arange(world).view(world // cp_size, cp_size), mesh_dim_names=("dp", "cp"))


def build_pipeline(pcfg: dict[str, Any]):
    """Load MOVA (or the injected factory) and apply the offload mode, as inference_single.py does."""
    import torch

    from mova_eval.generators.checkpoints import call_factory

    dtype = getattr(torch, pcfg.get("dtype") or "bfloat16")
    pipe = call_factory(pcfg.get("pipeline_factory") or DEFAULT_FACTORY, pcfg["checkpoint"], torch_dtype=dtype)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    offload = pcfg.get("offload") or "none"
    cuda = torch.cuda.is_available()
    if offload == "none":
        pipe.to(torch.device("cuda", local) if cuda else torch.device("cpu"))
    elif offload == "cpu":
        pipe.enable_model_cpu_offload(local)
    elif offload == "group":
        pipe.enable_group_offload(onload_device=torch.device("cuda", local) if cuda else torch.device("cpu"),
                                  offload_device=torch.device("cpu"), offload_type="leaf_level", use_stream=cuda,
                                  low_cpu_mem_usage=True, offload_to_disk_path=pcfg.get("offload_to_disk_path"))
    else:
        raise ValueError(f"offload must be none, cpu or group; got {offload!r}")
    cp = int(pcfg.get("cp_size") or 1)
    if cp > 1 and hasattr(pipe, "replace_attention"):
        import torch.distributed as dist
        from yunchang import set_seq_parallel_pg
        from yunchang.kernels import AttnType

        ulysses = min(cp, 4)
        set_seq_parallel_pg(sp_ulysses_degree=ulysses, sp_ring_degree=cp // ulysses, rank=dist.get_rank(),
                            world_size=dist.get_world_size(), use_ulysses_low=True)
        pipe.replace_attention(attn_type=AttnType.from_string(pcfg.get("attn_type") or "fa"))
    return pipe


def dual_cfg_kwargs(pipe, scale: float | None) -> dict[str, Any]:
    """kwargs enabling dual CFG, or a clear error when the installed MOVA lacks it (released code: cfg_mode is
    hard-coded to "text" and the dual branch raises NotImplementedError)."""
    if scale is None:
        return {}
    params = inspect.signature(pipe.__call__).parameters
    name = next((p for p in DUAL_CFG_PARAMS if p in params), None)
    if "cfg_mode" not in params or name is None:
        raise NotImplementedError(
            "dual CFG (generator.dual_cfg_scale, the paper's s_B) is not supported by the installed MOVA: its "
            f"pipeline call takes no cfg_mode/{'/'.join(DUAL_CFG_PARAMS)} argument (the released pipeline_mova "
            "hard-codes cfg_mode='text'). The paper's 'w/ dual CFG' rows cannot be reproduced with it; unset "
            "generator.dual_cfg_scale")
    return {"cfg_mode": "dual", name: float(scale)}


def run_job(pipe, job: dict[str, Any], mesh, dual_scale: float | None):
    """One MOVA call with inference_single.py's arguments; returns (video, audio, sample_rate)."""
    import torch

    from mova_eval.frames import load_image, white_image

    w, h = int(job["width"]), int(job["height"])
    image = load_image(job["first_frame"], w, h) if job.get("first_frame") else white_image(w, h)
    torch.manual_seed(int(job["seed"]))
    kwargs = dict(prompt=job["prompt"], negative_prompt=job["negative_prompt"], num_frames=int(job["num_frames"]),
                  image=image, height=h, width=w, video_fps=float(job["fps"]),
                  num_inference_steps=int(job["num_inference_steps"]), sigma_shift=float(job["sigma_shift"]),
                  cfg_scale=float(job["cfg_scale"]), seed=int(job["seed"]),
                  cp_mesh=mesh["cp"] if mesh is not None else None,
                  remove_video_dit=bool(job.get("remove_video_dit")), **dual_cfg_kwargs(pipe, dual_scale))
    try:
        video, audio = pipe(**kwargs)
    except NotImplementedError as e:
        if dual_scale is not None:
            raise NotImplementedError(f"the installed MOVA refused dual CFG: {e}") from e
        raise
    return video[0], audio[0], int(getattr(pipe, "audio_sample_rate", 48000))


def write_output(job: dict[str, Any], video, audio, sample_rate: int, extra: dict[str, Any]) -> None:
    from mova_eval.cache import atomic_write_text
    from mova_eval.frames import write_clip

    write_clip(job["out_path"], video, float(job["fps"]), audio, sample_rate)
    atomic_write_text(record_path(job["out_path"]), json.dumps({"ok": True, "fingerprint": job["fingerprint"],
                                                                "sample_rate": sample_rate, **extra}))


def _mova_version() -> str | None:
    """The installed MOVA's version in the worker's own environment (``generator.python`` may differ from ours)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mova")
    except PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    import torch

    rank, world = init_distributed()
    pcfg = spec["pipeline"]
    cp = int(pcfg.get("cp_size") or world)
    mesh = make_mesh(cp)
    dp_rank, cp_rank = rank // cp, rank % cp
    dp_size = world // cp
    pipe = build_pipeline(pcfg)
    cuda = torch.cuda.is_available()
    for i, job in enumerate(spec["jobs"]):
        if i % dp_size != dp_rank:
            continue
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            video, audio, sr = run_job(pipe, job, mesh, pcfg.get("dual_cfg_scale"))
            if cp_rank == 0:  # the first rank of the cp group writes; the others only computed
                peak = round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None
                write_output(job, video, audio, sr, {"wall_time_s": round(time.perf_counter() - t0, 3),
                                                     "peak_gpu_memory_mb": peak, "writer_rank": rank,
                                                     "world_size": world, "cp_size": cp,
                                                     "python": sys.executable,
                                                     "package_version": _mova_version()})
        except Exception as e:  # recorded per job; the adapter turns it into that item's error
            if cp_rank == 0:
                from mova_eval.cache import atomic_write_text

                atomic_write_text(record_path(job["out_path"]), json.dumps(
                    {"ok": False, "fingerprint": job["fingerprint"], "error": f"{type(e).__name__}: {e}",
                     "traceback": traceback.format_exc(limit=5), "writer_rank": rank}))
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
