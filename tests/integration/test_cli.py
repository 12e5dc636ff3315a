import subprocess
import sys

import pytest

from mova_eval.cli import main


@pytest.mark.parametrize("argv", [[], ["run"], ["ls"], ["validate"], ["weights"], ["weights", "fetch"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: mova-eval" in out


def test_run_help_shows_groups_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "suite" in out and "verse_set3" in out and "generator:" in out and "name: synthetic" in out and "output_dir: runs" in out


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "mova_eval", "ls"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "loudness" in r.stdout and "synthetic" in r.stdout and "smoke" in r.stdout


def test_ls_says_what_runs_here(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "✓ loudness" in out and "✓ smoke" in out


def test_validate_verse_file(verse_prompts, capsys):
    assert main(["validate", "suite=verse", f"suite.path={verse_prompts}"]) == 0
    out = capsys.readouterr().out
    assert "600 items, 243 with speech" in out and "set3" in out


def test_config_errors_exit_2_with_a_message(capsys):
    assert main(["run", "generator=directory"]) == 2
    assert "needs generator.path=DIR" in capsys.readouterr().err
    assert main(["run", "metrics.only=[loudnes]"]) == 2
    assert "Did you mean 'loudness'" in capsys.readouterr().err


def test_weights_list_names_every_registered_checkpoint(capsys):
    from mova_eval import weights

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert weights.registry()
    for name, spec in weights.registry().items():
        assert f"{name}\n  file: {spec.filename}" in out and spec.urls[0] in out


def test_a_mistyped_metric_option_exits_2_naming_the_key(capsys):
    assert main(["run", "metrics.only=loudness", "+metrics.options.loudness.mdoe=mova"]) == 2
    err = capsys.readouterr().err
    assert "metrics.options.loudness.mdoe: unknown option; known: mode" in err and "Traceback" not in err



def test_listing_composes_presets_that_leave_values_to_the_user():
    # `generator=directory` needs generator.path for a run, but `mova-eval ls` must still read the preset
    from mova_eval.config import compose

    cfg = compose(["generator=directory", "generator.path=???"], require_all=False)
    assert cfg["generator"]["name"] == "directory" and cfg["generator"]["path"] == "???"
    from mova_eval.errors import ConfigError

    with pytest.raises(ConfigError, match="generator.path is required"):
        compose(["generator=directory", "generator.path=???"])
