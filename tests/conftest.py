"""Shared test set-up: offline, an isolated cache root, and the read-only data beside the checkout (../shared)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO.parent / "shared").resolve()


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Every test session gets its own cache root, so tests never see a user's cache or each other's leftovers."""
    root = tmp_path_factory.mktemp("mova-eval-cache")
    old = os.environ.get("MOVA_EVAL_CACHE")
    os.environ["MOVA_EVAL_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("MOVA_EVAL_CACHE", None)
    else:
        os.environ["MOVA_EVAL_CACHE"] = old


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test with the reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"test data {p} is absent (it lives in shared/ beside the checkout, never in the project)")
    return p


@pytest.fixture
def verse_prompts() -> Path:
    return shared_path("verse-bench", "verse_bench_prompts.json")


@pytest.fixture
def roberta_tokenizer_dir() -> Path:
    return shared_path("tokenizers", "roberta-base")


@pytest.fixture
def unpin_weights(monkeypatch):
    """``unpin_weights(name, ...)``: the registry entries with their published digests removed for this test, so
    a stand-in file (seeded random weights in the checkpoint's layout) passes the run's pre-load check. The check
    itself is tested in tests/unit/test_weights_and_config.py; a test using this fixture tests the network's
    values only."""
    import dataclasses

    from mova_eval import weights

    def unpin(*names: str) -> None:
        for name in names:
            spec = weights.get(name)
            monkeypatch.setitem(weights._REGISTRY, name, dataclasses.replace(
                spec, sha256=None, sha256_source=None, sha256_prefix=None, sha256_prefix_source=None, md5=None,
                md5_source=None))

    return unpin
