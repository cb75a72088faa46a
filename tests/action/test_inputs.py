"""Action inputs: both spellings, every bad value named at once, exit 2 with ::error."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from tests.action.runner import parse_log

from apr_qa.action.inputs import DEFAULTS, InputError, read_inputs
from apr_qa.action.main import run_action
from apr_qa.playbook.model import Device, FailurePolicy


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "books").mkdir()
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / "books" / name).write_text("x: 1\n")
    return tmp_path


def test_hyphens_and_underscores_are_both_read(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    env = {
        "INPUT_PLAYBOOKS": "books/*.yaml\n# a comment\n\n",
        "INPUT_FAIL-BELOW": "b+",
        "INPUT_FAILURE_POLICY": "collect-all",
        "INPUT_BACKENDS": "cpu, gpu",
        "INPUT_SHARD": "2/3",
        "INPUT_WORKERS": " 4 ",
        "INPUT_UPDATE-README": "True",
    }
    inputs = read_inputs(env, ws)
    assert inputs.playbooks == (ws / "books" / "a.yaml", ws / "books" / "b.yaml")
    assert inputs.fail_below == "B+"
    assert inputs.failure_policy is FailurePolicy.COLLECT_ALL
    assert inputs.backends == (Device.CPU, Device.GPU)
    assert str(inputs.shard) == "2/3"
    assert inputs.workers == 4
    assert inputs.update_readme is True
    assert inputs.output_dir == ws / DEFAULTS["output-dir"]


def test_every_bad_input_is_named(tmp_path: Path) -> None:
    env = {
        "INPUT_PLAYBOOKS": "nowhere/*.yaml",
        "INPUT_WORKERS": "0",
        "INPUT_SUMMARY": "yes",
        "INPUT_SHARD": "4/3",
        "INPUT_FAIL-BELOW": "Z",
        "INPUT_BACKENDS": "tpu",
        "INPUT_FAILURE-POLICY": "sometimes",
        "INPUT_MODEL-PATH": "missing-model",
        "INPUT_HF-TOKEN": "a\nb",
    }
    with pytest.raises(InputError) as caught:
        read_inputs(env, tmp_path)
    named = {name for name, _ in caught.value.problems}
    assert named == {
        "playbooks",
        "workers",
        "summary",
        "shard",
        "fail-below",
        "backends",
        "failure-policy",
        "model-path",
        "hf-token",
    }


def test_a_bad_input_is_an_error_annotation_and_exit_2(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    env = {
        "GITHUB_WORKSPACE": str(_workspace(tmp_path)),
        "GITHUB_STEP_SUMMARY": str(summary),
        "INPUT_PLAYBOOKS": "books/a.yaml",
        "INPUT_WORKERS": "many",
        "INPUT_GITHUB-TOKEN": "ghs_tok",
    }
    out = io.StringIO()
    assert run_action(env, out) == 2
    commands = parse_log(out.getvalue())
    assert commands[0].name == "add-mask" and commands[0].message == "ghs_tok"
    (error,) = [c for c in commands if c.name == "error"]
    assert error.properties["title"] == "apr-qa: input 'workers'"
    assert "'many'" in error.message
    assert "input 'workers'" in summary.read_text()


def test_a_playbook_error_is_reported_not_raised(tmp_path: Path) -> None:
    out = io.StringIO()
    env = {"GITHUB_WORKSPACE": str(_workspace(tmp_path)), "INPUT_PLAYBOOKS": "books/a.yaml"}
    assert run_action(env, out) == 2
    errors = [c for c in parse_log(out.getvalue()) if c.name == "error"]
    assert errors and all(c.properties["title"] == "apr-qa" for c in errors)
    assert any("a.yaml" in c.message for c in errors)


def test_the_cli_command_is_the_entrypoint(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from apr_qa.cli import cli

    env = {"GITHUB_WORKSPACE": str(tmp_path), "INPUT_PLAYBOOKS": "none/*.yaml"}
    result = CliRunner().invoke(cli, ["action"], env=env)
    assert result.exit_code == 2
    (error,) = [c for c in parse_log(result.stdout) if c.name == "error"]
    assert error.properties["title"] == "apr-qa: input 'playbooks'"
