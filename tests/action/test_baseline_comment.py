"""A pull request compared with the base branch's evidence: the regression is in the
PR comment and in the ``regressions`` output, and the step fails."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from tests.action.runner import FakeGitHub, pull_request_event, push_event, read_outputs, serve
from tests.action.workspace import make_workspace, runner_env

from apr_qa.action.main import run_action

TOKEN = "ghs_baseline"


def test_a_regression_against_the_baseline_is_commented_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HOME", raising=False)
    root = make_workspace(tmp_path / "repo", broken=False)
    model = root / "models" / "scripted.json"
    script = json.loads(model.read_text())
    failing = script["answers"]["Say hello."]
    # The base branch: the model says goodbye, every scenario passes.
    script["answers"]["Say hello."] = "hello and goodbye"
    model.write_text(json.dumps(script))
    base = runner_env(
        root, "push", push_event("octo/models"), playbooks="playbooks/*.yaml", output_dir="base"
    )
    run_action(base, io.StringIO(), backend="fake")
    assert read_outputs(Path(base["GITHUB_OUTPUT"]))["regressions"] == "0"
    # The pull request: the model no longer does.
    script["answers"]["Say hello."] = failing
    model.write_text(json.dumps(script))
    github = FakeGitHub("octo/models", TOKEN)
    for url in serve(github):
        env = runner_env(
            root,
            "pull_request",
            pull_request_event(11, "octo/models"),
            playbooks="playbooks/*.yaml",
            output_dir="pr",
            baseline="base",
            github_token=TOKEN,
        )
        env["GITHUB_API_URL"] = url
        code = run_action(env, io.StringIO(), backend="fake")
    outputs = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert outputs["regressions"] == "1"
    assert code == 1
    (comment,) = github.comments[11]
    body = comment["body"]
    assert "#### Compared with baseline" in body
    assert "greet" in body.split("#### Compared with baseline", 1)[1]
