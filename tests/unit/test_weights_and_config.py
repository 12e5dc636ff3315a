import hashlib
import http.server
import threading

import pytest

from mova_eval import weights
from mova_eval.config import compose, group_options
from mova_eval.errors import ConfigError, WeightsChecksumError, WeightsMissingError

PAYLOAD = bytes(range(256)) * 4000  # 1 MB: a cut first transfer leaves several chunks in the .part file


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with HTTP Range support; the first full request is cut short to exercise resume."""

    cut_first = True
    ranges: list[str] = []  # the Range headers received, to tell a resume from a fresh download

    def do_GET(self):  # noqa: N802
        start = 0
        rng = self.headers.get("Range")
        if rng:
            _RangeHandler.ranges.append(rng)
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not rng and _RangeHandler.cut_first:
            _RangeHandler.cut_first = False
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"
    httpd.shutdown()


def _spec(name, url, sha=None):
    return weights.register(weights.WeightSpec(name=name, filename=f"{name}.bin", urls=(url,), license="test",
                                               used_by=("test",), sha256=sha))


def test_missing_weights_name_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    _spec("test-missing", "http://127.0.0.1:9/none")
    with pytest.raises(WeightsMissingError) as e:
        weights.resolve("test-missing")
    assert "mova-eval weights fetch test-missing" in str(e.value)
    assert weights.verify("test-missing")[0] == "missing"


def test_user_folder_is_searched_first(monkeypatch, tmp_path):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    _spec("test-user", "http://127.0.0.1:9/none")
    (tmp_path / "test-user.bin").write_bytes(b"abc")
    assert weights.resolve("test-user") == tmp_path / "test-user.bin"
    assert weights.fingerprint("test-user") == hashlib.sha256(b"abc").hexdigest()


def _fetch_twice(name):
    for _ in range(2):  # the first attempt is cut short by the server
        try:
            return weights.fetch(name, progress=False)
        except Exception:
            continue
    return None


def test_fetch_resumes_a_cut_download_when_the_hash_is_pinned(server):
    _RangeHandler.cut_first, _RangeHandler.ranges = True, []
    _spec("test-fetch-pinned", server, sha=hashlib.sha256(PAYLOAD).hexdigest())
    path = _fetch_twice("test-fetch-pinned")
    assert path is not None and path.read_bytes() == PAYLOAD
    assert _RangeHandler.ranges  # the second attempt asked only for the missing bytes
    assert weights.verify("test-fetch-pinned")[0] == "ok"


def test_an_unpinned_fetch_restarts_instead_of_splicing_and_pins_on_first_use(server):
    _RangeHandler.cut_first, _RangeHandler.ranges = True, []
    spec = _spec("test-fetch", server)
    stale = weights.weights_dir() / (spec.filename + ".part")
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"bytes of another version of the file")  # a leftover that must not be spliced in
    path = _fetch_twice("test-fetch")
    assert path is not None and path.read_bytes() == PAYLOAD
    assert not _RangeHandler.ranges
    assert weights.local_pins()["test-fetch"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert weights.verify("test-fetch")[0] == "ok"


def test_fetch_refuses_a_wrong_checksum(server):
    _RangeHandler.cut_first = False
    spec = _spec("test-badsum", server, sha="0" * 64)
    with pytest.raises(WeightsChecksumError, match="expected 0000"):
        weights.fetch("test-badsum", progress=False)
    assert not (weights.weights_dir() / (spec.filename + ".part")).exists()  # the next fetch starts clean


def test_every_config_group_option_composes():
    for group in ("suite", "generator", "metrics", "runtime"):
        for option in group_options(group):
            overrides = [f"{group}={option}"]
            cfg = compose(overrides, require_all=False)
            assert cfg[group] is not None


def test_config_errors_are_typed_and_say_what_to_set():
    with pytest.raises(ConfigError, match="generator.path is required"):
        compose(["generator=directory", "generator.path=???"])
    with pytest.raises(ConfigError, match="bad configuration"):
        compose(["suite=nonexistent_suite"])
