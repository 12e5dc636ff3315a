"""The CI job of docs/ci.md, run as written: a pinned clip folder scored with `generator=directory`, compared with
a committed baseline run directory; the clean folder passes (exit 0), a folder whose audio is 400 ms late fails
(exit 1) with a JUnit failure on av_align."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # two synthetic runs to make the clip folders, a baseline and two CI runs (~1 min)

REPO = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).parent / "data" / "mini_verse.json"
GEN = ["suite=verse", f"suite.path={SUITE}", "generator=synthetic", "generator.width=128", "generator.height=96",
       "generator.duration=2.0", "metrics.only=[loudness]", "runtime.progress=false", "runtime.bootstrap=50"]


def _script() -> str:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- ci-script:start -->\s*```bash\n(.*?)```\s*<!-- ci-script:end -->", text, re.S)
    assert m, "docs/ci.md lost its ci-script block"
    return m.group(1)


def _gate() -> str:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    return re.search(r"`ci/gate.yaml`:\s*```yaml\n(.*?)```", text, re.S).group(1)


def _clip_folder(run_dir: Path, dest: Path) -> Path:
    """The clips a synthetic run made, laid out as <set>/<item_id>.mp4 (what a user pins in their repo)."""
    items = pd.read_parquet(run_dir / "items.parquet").drop_duplicates("item_id")
    for r in items.itertuples():
        (dest / r.category).mkdir(parents=True, exist_ok=True)
        shutil.copy(r.clip_path, dest / r.category / f"{r.item_id}_video_seed0.mp4")
    return dest


@pytest.fixture(scope="module")
def ci_repo(tmp_path_factory):
    import mova_eval

    root = tmp_path_factory.mktemp("repo")
    made = tmp_path_factory.mktemp("made")
    clean = mova_eval.run([*GEN, f"output_dir={made}", "run_id=clean"]).run_dir
    late = mova_eval.run([*GEN, "+generator.defects.audio_offset_ms=400", f"output_dir={made}", "run_id=late"]).run_dir
    (root / "ci").mkdir()
    shutil.copy(SUITE, root / "ci" / "prompts.json")
    _clip_folder(clean, root / "ci" / "clips")
    _clip_folder(late, root / "late-clips")
    (root / "ci" / "gate.yaml").write_text(_gate())
    (root / "ci" / "eval-gate.sh").write_text(_script())
    # the committed baseline, made as docs/ci.md says
    mova = str(Path(sys.executable).with_name("mova-eval"))
    r = subprocess.run([mova, "run", "suite=verse", "suite.path=ci/prompts.json", "generator=directory",
                        "generator.path=ci/clips", "metrics.only=[loudness,av_align]", "output_dir=ci",
                        "run_id=baseline", "runtime.progress=false"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return root, mova


def _job(root: Path, mova: str, out: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "ci/eval-gate.sh"], cwd=root, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MOVA": mova, "OUT": out, **env})


def test_directory_run_is_labelled_with_the_folder_name(ci_repo):
    root, _ = ci_repo
    items = pd.read_parquet(root / "ci" / "baseline" / "items.parquet")
    assert set(items["model"]) == {"clips"} and set(items["generator"]) == {"directory"}
    assert (root / "ci" / "baseline" / "summary.parquet").is_file()


def test_the_clean_folder_passes(ci_repo):
    root, mova = ci_repo
    r = _job(root, mova, "out-clean")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "**PASS**" in r.stdout
    assert (root / "out-clean" / "report" / "report.html").is_file()
    cases = list(ET.parse(root / "out-clean" / "junit.xml").getroot().iter("testcase"))
    assert {c.get("name") for c in cases} == {"av_align", "lufs"} and not any(c.find("failure") is not None
                                                                              for c in cases)


def test_late_audio_fails_the_gate(ci_repo):
    root, mova = ci_repo
    r = _job(root, mova, "out-late", CLIPS="late-clips")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "**FAIL**" in r.stdout
    cases = {c.get("name"): c for c in ET.parse(root / "out-late" / "junit.xml").getroot().iter("testcase")}
    assert cases["av_align"].find("failure") is not None
    assert "regression" in (root / "out-late" / "compare.md").read_text()
