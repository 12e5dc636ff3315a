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
                                               used_by=("test",), sha256=sha, sha256_source="test publisher"))


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
    with pytest.raises(WeightsChecksumError, match=f"has sha256 {hashlib.sha256(PAYLOAD).hexdigest()}, expected the "
                                                   f"publisher's 0000"):
        weights.fetch("test-badsum", progress=False)
    assert not (weights.weights_dir() / (spec.filename + ".part")).exists()  # the next fetch starts clean


def _md5_spec(name, url, md5):
    return weights.register(weights.WeightSpec(name=name, filename=f"{name}.bin", urls=(url,), license="test",
                                               used_by=("test",), md5=md5, md5_source="test publisher"))


def test_an_md5_only_fetch_is_checked_resumes_and_records_the_sha256(server):
    _RangeHandler.cut_first, _RangeHandler.ranges = True, []
    _md5_spec("test-md5", server, hashlib.md5(PAYLOAD).hexdigest())
    path = _fetch_twice("test-md5")
    assert path is not None and path.read_bytes() == PAYLOAD
    assert _RangeHandler.ranges  # a checked download may resume its cut transfer
    assert weights.local_pins()["test-md5"] == hashlib.sha256(PAYLOAD).hexdigest()
    status, detail = weights.verify("test-md5")
    assert status == "ok", detail


def test_fetch_refuses_a_file_whose_md5_differs_from_the_publishers(server):
    _RangeHandler.cut_first = False
    spec = _md5_spec("test-md5-bad", server, "0" * 32)
    with pytest.raises(WeightsChecksumError, match="expected the publisher's 0{32} \\(test publisher\\)"):
        weights.fetch("test-md5-bad", progress=False)
    assert not (weights.weights_dir() / (spec.filename + ".part")).exists()
    assert "test-md5-bad" not in weights.local_pins()  # nothing was trusted


def test_a_user_file_is_checked_against_the_publishers_md5(monkeypatch, tmp_path):
    from mova_eval.context import RunContext
    from mova_eval.runner import _unverified_weights

    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))  # for `weights verify` (no run context)
    ctx = RunContext(cache_root=tmp_path / "cache", weights_dirs=(tmp_path,))  # what a run passes
    _md5_spec("test-md5-user", "http://127.0.0.1:9/none", hashlib.md5(b"good").hexdigest())
    f = tmp_path / "test-md5-user.bin"
    f.write_bytes(b"good")
    assert weights.verify("test-md5-user")[0] == "ok"  # checked, not "unpinned"
    assert weights.trust_problem("test-md5-user", ctx) is None and _unverified_weights(["test-md5-user"], ctx) is None
    f.write_bytes(b"evil")  # a replaced file (new size, so the memo is not reused)
    status, detail = weights.verify("test-md5-user")
    assert status == "mismatch" and hashlib.md5(b"evil").hexdigest() in detail
    reason = _unverified_weights(["test-md5-user"], ctx)
    assert reason is not None and "publisher's " + hashlib.md5(b"good").hexdigest() in reason


def test_an_md5_needs_its_source_and_a_valid_form():
    with pytest.raises(ValueError, match="md5_source"):
        weights.WeightSpec(name="x", filename="x", urls=(), license="", used_by=(), md5="0" * 32)
    with pytest.raises(ValueError, match="32 lowercase hex"):
        weights.WeightSpec(name="x", filename="x", urls=(), license="", used_by=(), md5="ABC", md5_source="s")


def test_synchformer_is_pinned_by_mmaudios_published_md5():
    spec = weights.get("synchformer")
    assert spec.md5 == "5b2f5594b0730f70e41e549b7c94390c" and "MMAudio" in spec.md5_source


def _prefix_spec(name, url, prefix):
    return weights.register(weights.WeightSpec(name=name, filename=f"{name}-{prefix}.bin", urls=(url,),
                                               license="test", used_by=("test",), sha256_prefix=prefix,
                                               sha256_prefix_source="test file name"))


def test_a_sha256_prefix_is_a_typed_checked_field():
    with pytest.raises(ValueError, match="sha256_prefix_source"):
        weights.WeightSpec(name="x", filename="x", urls=(), license="", used_by=(), sha256_prefix="10086976")
    with pytest.raises(ValueError, match="8-63 lowercase hex"):
        weights.WeightSpec(name="x", filename="x", urls=(), license="", used_by=(), sha256_prefix="1008",
                           sha256_prefix_source="s")
    with pytest.raises(ValueError, match="sha256_source"):
        weights.WeightSpec(name="x", filename="x", urls=(), license="", used_by=(), sha256="0" * 64)
    with pytest.raises(ValueError, match="does not start with"):
        weights.WeightSpec(name="x", filename="x", urls=(), license="", used_by=(), sha256="0" * 64,
                           sha256_source="s", sha256_prefix="12345678", sha256_prefix_source="s")
    pins = weights.get("vggish").pins()
    assert [(p.kind, p.value) for p in pins] == [("sha256 prefix", "10086976")]
    assert "10086976" in weights.get("vggish").filename and "torchvggish" in pins[0].source


def test_published_full_sha256_pins():
    clap = weights.get("laion_clap_630k_audioset_fusion")
    assert clap.sha256 == "fb171dd9b608aebdac3d89286cd7615c5100af4cc7dc37797c7fb8d3cc15e3a5"
    assert "LFS" in clap.sha256_source
    clip = weights.get("clip_vit_b32_openai")
    assert clip.sha256 in clip.urls[0] and clip.sha256_source
    # roberta-base's tokenizer files are plain git files on Hugging Face: nothing is published, nothing invented
    assert all(not weights.get(n).pins() for n in ("roberta_base_vocab", "roberta_base_merges"))


def test_a_file_failing_its_sha256_prefix_is_refused_naming_file_and_digests(monkeypatch, tmp_path):
    from mova_eval.context import RunContext
    from mova_eval.runner import _unverified_weights

    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))  # for `weights verify` (no run context)
    ctx = RunContext(cache_root=tmp_path / "cache", weights_dirs=(tmp_path,))  # what a run passes
    good = b"the published bytes"
    prefix = hashlib.sha256(good).hexdigest()[:8]
    spec = _prefix_spec("test-prefix", "http://127.0.0.1:9/none", prefix)
    f = tmp_path / spec.filename
    f.write_bytes(good)
    status, detail = weights.verify("test-prefix")
    assert status == "ok" and "sha256 prefix" in detail, detail  # checked, not "unpinned"
    assert _unverified_weights(["test-prefix"], ctx) is None
    f.write_bytes(b"a replaced file")
    bad = hashlib.sha256(b"a replaced file").hexdigest()
    status, detail = weights.verify("test-prefix")
    assert status == "mismatch" and str(f) in detail and prefix in detail and bad[:8] in detail, detail
    reason = _unverified_weights(["test-prefix"], ctx)
    assert reason is not None and str(f) in reason and f"expected the publisher's {prefix}" in reason
    assert f"sha256 prefix {bad[:8]}" in reason


def test_a_prefix_pinned_fetch_is_checked_resumes_and_records_the_sha256(server):
    _RangeHandler.cut_first, _RangeHandler.ranges = True, []
    _prefix_spec("test-prefix-fetch", server, hashlib.sha256(PAYLOAD).hexdigest()[:8])
    path = _fetch_twice("test-prefix-fetch")
    assert path is not None and path.read_bytes() == PAYLOAD
    assert _RangeHandler.ranges  # a checked download may resume its cut transfer
    assert weights.local_pins()["test-prefix-fetch"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert weights.verify("test-prefix-fetch")[0] == "ok"


def test_fetch_refuses_a_file_whose_sha256_prefix_differs(server):
    _RangeHandler.cut_first = False
    spec = _prefix_spec("test-prefix-bad", server, "deadbeef")
    got = hashlib.sha256(PAYLOAD).hexdigest()[:8]
    with pytest.raises(WeightsChecksumError, match=f"sha256 prefix {got}, expected the publisher's deadbeef"):
        weights.fetch("test-prefix-bad", progress=False)
    assert not (weights.weights_dir() / (spec.filename + ".part")).exists()
    assert "test-prefix-bad" not in weights.local_pins()


def test_a_stand_in_clap_file_is_refused_by_the_published_sha256(monkeypatch, tmp_path):
    from mova_eval.context import RunContext
    from mova_eval.runner import _unverified_weights

    ctx = RunContext(cache_root=tmp_path / "cache", weights_dirs=(tmp_path,))
    f = tmp_path / "630k-audioset-fusion-best.pt"
    f.write_bytes(b"not LAION's checkpoint")
    reason = _unverified_weights(["laion_clap_630k_audioset_fusion"], ctx)
    assert reason is not None and str(f) in reason and "fb171dd9b608" in reason
    assert hashlib.sha256(b"not LAION's checkpoint").hexdigest() in reason


def test_weights_list_shows_each_pin_kind(capsys):
    from mova_eval.cli import main

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    entries: dict[str, str] = {}
    name = None
    for line in out.splitlines():
        if not line.startswith(" "):
            name = line.strip()
            entries[name] = ""
        else:
            entries[name] += line + "\n"
    assert "pin: sha256 prefix 10086976 (published: " in entries["vggish"]
    assert "pin: sha256 fb171dd9b608aebdac3d89286cd7615c5100af4cc7dc37797c7fb8d3cc15e3a5 (published: " in \
        entries["laion_clap_630k_audioset_fusion"]
    assert "pin: md5 5b2f5594b0730f70e41e549b7c94390c (published: " in entries["synchformer"]
    assert "trust on first use" in entries["roberta_base_vocab"]
    assert "trust on first use" not in entries["laion_clap_630k_audioset_fusion"]


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
