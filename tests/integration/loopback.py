"""A bounded HTTP server on 127.0.0.1 for the HTTP adapters' tests, and fakes of the documented video APIs
(SGLang ``/v1/videos``, OpenAI ``/v1/videos``, Gemini ``predictLongRunning``) that serve a fixture clip.

The fakes implement the request/response shapes the adapters rely on and can inject the failures they must
survive: 5xx/429 before success, slow answers (client timeouts), failed jobs, jobs that take several polls,
and servers that forget jobs. Every request is recorded for assertions.
"""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    json: Any = None


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    msg = BytesParser(policy=email_policy).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields, files = {}, {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if part.get_filename():
            files[name] = (part.get_filename(), part.get_content_type(), data)
        else:
            fields[name] = data.decode()
    return fields, files


class Loopback:
    """``with Loopback(app) as srv: srv.url`` — app(seen) returns (status, headers, body bytes)."""

    def __init__(self, app):
        self.app = app
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a stuck client cannot hold a server thread for long

            def log_message(self, *a):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("multipart/form-data"):
                    seen.fields, seen.files = parse_multipart(ctype, body)
                elif ctype.startswith("application/json") and body:
                    seen.json = json.loads(body)
                outer.seen.append(seen)
                status, headers, payload = outer.app(seen)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _json(status: int, obj: Any, headers: dict | None = None):
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode()


class FakeVideoService:
    """Shared behaviour: ``fail_submits`` answers before a submit succeeds, ``polls_to_finish``, ``fail_jobs``,
    ``slow_s`` (delay on every answer), ``forget_jobs`` (404 for ids it did not create in this life)."""

    def __init__(self, clip: bytes, *, fail_submits: list[int] = (), polls_to_finish: int = 1, fail_jobs: bool = False,
                 slow_s: float = 0.0, list_response: bool = False):
        self.clip = clip
        self.fail_submits = list(fail_submits)
        self.polls_to_finish = polls_to_finish
        self.fail_jobs = fail_jobs
        self.slow_s = slow_s
        self.list_response = list_response
        self.jobs: dict[str, dict] = {}
        self.submits = 0
        self.lock = threading.Lock()

    def __call__(self, seen: Seen):
        if self.slow_s:
            time.sleep(self.slow_s)
        with self.lock:
            return self.route(seen)

    def _next_failure(self):
        if self.fail_submits:
            code = self.fail_submits.pop(0)
            return _json(code, {"error": {"message": f"injected {code}"}}, {"Retry-After": "0"} if code == 429 else {})
        return None


class FakeSGLang(FakeVideoService):
    def route(self, seen: Seen):
        parts = seen.path.split("?")[0].strip("/").split("/")
        if seen.method == "POST" and parts == ["v1", "videos"]:
            fail = self._next_failure()
            if fail:
                return fail
            self.submits += 1
            tid = str(uuid.uuid4())
            self.jobs[tid] = {"id": tid, "status": "queued", "progress": 0, "polls": 0, "created_at": time.time(),
                              "fields": seen.fields}
            task = {k: v for k, v in self.jobs[tid].items() if k not in ("polls", "fields")}
            return _json(200, [task] if self.list_response else task)
        if seen.method == "GET" and parts[:2] == ["v1", "videos"] and len(parts) == 3:
            job = self.jobs.get(parts[2])
            if job is None:
                return _json(404, {"error": "task not found"})
            job["polls"] += 1
            if job["polls"] >= self.polls_to_finish:
                if self.fail_jobs:
                    job.update(status="failed", error="CUDA out of memory (injected)")
                else:
                    job.update(status="completed", progress=100, completed_at=time.time(), inference_time_s=1.5,
                               peak_memory_mb=45611.47, download_url=f"//v1/videos/{job['id']}/download")
            else:
                job.update(status="running", progress=50)
            return _json(200, {k: v for k, v in job.items() if k not in ("polls", "fields")})
        if seen.method == "GET" and parts[:2] == ["v1", "videos"] and len(parts) == 4 and parts[3] == "download":
            if parts[2] not in self.jobs:
                return _json(404, {"error": "task not found"})
            return 200, {"Content-Type": "video/mp4"}, self.clip
        return _json(404, {"error": f"no route {seen.method} {seen.path}"})


class FakeOpenAIVideos(FakeVideoService):
    """OpenAI Videos API: POST /v1/videos (multipart), GET /v1/videos/{id}, GET /v1/videos/{id}/content."""

    def __init__(self, clip: bytes, key: str, **kw):
        super().__init__(clip, **kw)
        self.key = key

    def route(self, seen: Seen):
        if seen.headers.get("authorization") != f"Bearer {self.key}":
            return _json(401, {"error": {"message": "Incorrect API key provided"}})
        parts = seen.path.split("?")[0].strip("/").split("/")
        if seen.method == "POST" and parts == ["v1", "videos"]:
            fail = self._next_failure()
            if fail:
                return fail
            if seen.fields.get("seconds") not in ("4", "8", "12"):
                return _json(400, {"error": {"message": "Invalid value for 'seconds'", "param": "seconds"}})
            self.submits += 1
            vid = "video_" + uuid.uuid4().hex[:12]
            self.jobs[vid] = {"id": vid, "object": "video", "model": seen.fields.get("model"), "status": "queued",
                              "progress": 0, "seconds": seen.fields.get("seconds"), "size": seen.fields.get("size"),
                              "polls": 0}
            return _json(200, {k: v for k, v in self.jobs[vid].items() if k != "polls"})
        if seen.method == "GET" and parts[:2] == ["v1", "videos"] and len(parts) == 3:
            job = self.jobs.get(parts[2])
            if job is None:
                return _json(404, {"error": {"message": "Video not found"}})
            job["polls"] += 1
            if job["polls"] >= self.polls_to_finish:
                if self.fail_jobs:
                    job.update(status="failed", error={"code": "moderation_blocked", "message": "blocked (injected)"})
                else:
                    job.update(status="completed", progress=100)
            else:
                job.update(status="in_progress", progress=40)
            return _json(200, {k: v for k, v in job.items() if k != "polls"})
        if seen.method == "GET" and len(parts) == 4 and parts[3] == "content":
            return 200, {"Content-Type": "video/mp4"}, self.clip
        return _json(404, {"error": {"message": "not found"}})


class FakeGemini(FakeVideoService):
    """Gemini API Veo: POST /v1beta/models/{m}:predictLongRunning → operation; GET /v1beta/{operation name};
    the finished operation points at a file URI downloaded with the same x-goog-api-key header."""

    def __init__(self, clip: bytes, key: str, **kw):
        super().__init__(clip, **kw)
        self.key = key

    def route(self, seen: Seen):
        if seen.headers.get("x-goog-api-key") != self.key or "key=" in seen.path:
            return _json(403, {"error": {"code": 403, "message": "API key not valid", "status": "PERMISSION_DENIED"}})
        path = seen.path.split("?")[0]
        if seen.method == "POST" and path.endswith(":predictLongRunning"):
            fail = self._next_failure()
            if fail:
                return fail
            model = path.split("/models/")[1].split(":")[0]
            self.submits += 1
            name = f"models/{model}/operations/{uuid.uuid4().hex[:10]}"
            self.jobs[name] = {"name": name, "polls": 0, "request": seen.json}
            return _json(200, {"name": name})
        if seen.method == "GET" and "/operations/" in path:
            name = path.split("/v1beta/", 1)[1]
            job = self.jobs.get(name)
            if job is None:
                return _json(404, {"error": {"code": 404, "message": "operation not found"}})
            job["polls"] += 1
            if job["polls"] < self.polls_to_finish:
                return _json(200, {"name": name, "done": False})
            if self.fail_jobs:
                return _json(200, {"name": name, "done": True,
                                   "error": {"code": 3, "message": "prompt blocked by safety filters (injected)"}})
            fid = name.rsplit("/", 1)[1]
            uri = f"{self._base}/v1beta/files/{fid}:download?alt=media"
            return _json(200, {"name": name, "done": True, "response": {"@type": "type.googleapis.com/x",
                               "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]}}})
        if seen.method == "GET" and path.startswith("/v1beta/files/"):
            return 200, {"Content-Type": "video/mp4"}, self.clip
        return _json(404, {"error": {"code": 404, "message": "not found"}})

    _base = ""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
