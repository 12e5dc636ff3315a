"""mova_sglang against a loopback fake of SGLang's /v1/videos API (127.0.0.1 only) serving a fixture clip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mova_eval import media
from mova_eval.config import compose
from mova_eval.generators._remote import RemoteJobs
from mova_eval.generators.mova_sglang import MovaSGLang
from mova_eval.spec import GenRequest, SuiteItem

from .loopback import FakeSGLang, Loopback


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("fixture")
    t = np.arange(16000) / 16000
    video = np.full((12, 64, 96, 3), 120, np.uint8)
    media.encode(d / "c.mp4", video, 24.0, (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[None], 16000)
    return (d / "c.mp4").read_bytes()


def _gen(url: str, **over) -> MovaSGLang:
    cfg = compose(["generator=mova_sglang", f"generator.url={url}"])["generator"]
    cfg.update({"poll_interval_s": 0.01, "backoff_s": 0.01, "retries": 2, "submit_timeout_s": 2, **over})
    g = MovaSGLang(cfg)
    g.load()
    return g


def _req(tmp_path: Path, i: int = 0, first_frame: str | None = None) -> GenRequest:
    item = SuiteItem(id=f"i{i}", category="set1", prompt=f"A dog barks {i}.", first_frame=first_frame)
    return GenRequest(f"i{i}#s0", item, 0, width=640, height=352, fps=24.0, out_path=str(tmp_path / f"c{i}.mp4"))


def test_request_shape_polling_and_download(tmp_path, clip_bytes):
    from PIL import Image

    Image.new("RGB", (1280, 720), (10, 200, 30)).save(tmp_path / "ff.png")
    with Loopback(FakeSGLang(clip_bytes, polls_to_finish=3, list_response=True)) as srv:
        res = _gen(srv.url).generate([_req(tmp_path, 0, str(tmp_path / "ff.png")), _req(tmp_path, 1)])
        posts = [s for s in srv.seen if s.method == "POST"]
    assert all(r.ok for r in res), [r.error for r in res]
    assert len(posts) == 2
    f = {p.fields["prompt"]: p for p in posts}["A dog barks 0."]
    assert f.fields == {"prompt": "A dog barks 0.", "size": "640x352", "num_frames": "193", "fps": "24", "seed": "42",
                        "guidance_scale": "5", "num_inference_steps": "50"}
    name, mime, png = f.files["input_reference"]
    assert mime == "image/png"
    from io import BytesIO

    img = Image.open(BytesIO(png))
    assert img.size == (640, 352) and img.getpixel((5, 5)) == (10, 200, 30)  # cropped/resized first frame
    white = Image.open(BytesIO({p.fields["prompt"]: p for p in posts}["A dog barks 1."].files["input_reference"][2]))
    assert white.getpixel((0, 0)) == (255, 255, 255)  # T2VA: the white first frame of MOVA's workflow
    assert res[0].provenance["mode"] == "it2va" and res[1].provenance["mode"] == "t2va"
    assert Path(res[0].path).read_bytes() == clip_bytes
    assert res[0].provenance["peak_gpu_memory_mb"] == 45611.47 and res[0].provenance["remote_id"]
    assert res[0].provenance["returned"]["width"] == 96  # what the server really made is recorded


def test_retries_on_503_and_429_then_succeeds(tmp_path, clip_bytes):
    with Loopback(FakeSGLang(clip_bytes, fail_submits=[503, 429])) as srv:
        (res,) = _gen(srv.url).generate([_req(tmp_path)])
        assert res.ok, res.error
        assert [s.method for s in srv.seen][:3] == ["POST", "POST", "POST"]


def test_gives_up_after_retries_with_the_status(tmp_path, clip_bytes):
    with Loopback(FakeSGLang(clip_bytes, fail_submits=[503, 503, 503, 503])) as srv:
        (res,) = _gen(srv.url, retries=2).generate([_req(tmp_path)])
        assert sum(s.method == "POST" for s in srv.seen) == 3
    assert res.path is None and "gave up after 3 attempts" in res.error and "HTTP 503" in res.error


def test_client_error_is_not_retried(tmp_path, clip_bytes):
    with Loopback(FakeSGLang(clip_bytes, fail_submits=[422])) as srv:
        (res,) = _gen(srv.url).generate([_req(tmp_path)])
        assert sum(s.method == "POST" for s in srv.seen) == 1
    assert "HTTP 422" in res.error


def test_failed_job_is_a_per_item_error_and_is_resubmitted_next_time(tmp_path, clip_bytes):
    fake = FakeSGLang(clip_bytes, fail_jobs=True)
    with Loopback(fake) as srv:
        (res,) = _gen(srv.url).generate([_req(tmp_path)])
        assert "failed" in res.error and "CUDA out of memory" in res.error
        assert not RemoteJobs.path(tmp_path / "c0.mp4").exists()
        fake.fail_jobs = False
        (res,) = _gen(srv.url).generate([_req(tmp_path)])
        assert res.ok and fake.submits == 2


def test_interrupted_run_resumes_the_remote_job_without_resubmitting(tmp_path, clip_bytes):
    fake = FakeSGLang(clip_bytes, polls_to_finish=10_000)
    with Loopback(fake) as srv:
        (res,) = _gen(srv.url, poll_timeout_s=0.2).generate([_req(tmp_path)])
        assert res.path is None and "not finished" in res.error
        rec = json.loads(RemoteJobs.path(tmp_path / "c0.mp4").read_text())
        fake.polls_to_finish = 1
        (res,) = _gen(srv.url).generate([_req(tmp_path)])
    assert res.ok and fake.submits == 1
    assert res.provenance["remote_id"] == rec["remote_id"] and res.provenance["resumed_remote_job"] is True


def test_server_that_forgot_the_job_gets_one_new_submission(tmp_path, clip_bytes):
    fake = FakeSGLang(clip_bytes)
    with Loopback(fake) as srv:
        g = _gen(srv.url)
        req = _req(tmp_path)
        from mova_eval.generators.base import fingerprint

        plan = g.plan(req)
        fp = fingerprint(g.base, g.identity(), g._payload(req, plan))
        RemoteJobs.put(req.out_path, {"remote_id": "gone", "fingerprint": fp})
        (res,) = g.generate([req])
    assert res.ok and fake.submits == 1 and res.provenance["resumed_remote_job"] is False


def test_timeouts_are_retried_then_reported(tmp_path, clip_bytes):
    with Loopback(FakeSGLang(clip_bytes, slow_s=0.6)) as srv:
        (res,) = _gen(srv.url, submit_timeout_s=0.2, retries=1).generate([_req(tmp_path)])
    assert res.path is None and "ReadTimeout" in res.error and "gave up after 2 attempts" in res.error


def test_concurrency_limit(tmp_path, clip_bytes):
    import threading

    active, peak = [0], [0]
    lock = threading.Lock()
    fake = FakeSGLang(clip_bytes)
    inner = fake.route

    def tracking(seen):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        import time

        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return inner(seen)

    fake.route = tracking
    fake.lock = threading.RLock()  # let requests overlap in the fake; the adapter must cap them
    fake.__class__ = type("Unlocked", (FakeSGLang,), {"__call__": lambda self, s: self.route(s)})
    with Loopback(fake) as srv:
        res = _gen(srv.url, concurrency=2).generate([_req(tmp_path, i) for i in range(5)])
    assert all(r.ok for r in res)
    assert peak[0] == 2


def test_bad_url_is_a_per_item_error_and_ls_readiness():
    av = MovaSGLang.availability(compose(["generator=mova_sglang"])["generator"])
    assert not av.ok and "generator.url=http://HOST:30000" in av.command
    assert MovaSGLang.availability({"url": "ftp://x"}).ok is False
    g = MovaSGLang({"name": "mova_sglang", "url": "ftp://x", "num_frames": 193, "fps": 24})
    g.load()
    (res,) = g.generate([GenRequest("a#s0", SuiteItem(id="a", category="c", prompt="p"), 0, width=640, height=352)])
    assert "generator.url must be an http(s) URL" in res.error
