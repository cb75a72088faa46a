"""``apr-qa action`` end to end on a pull_request event, on the fake backend: the job
summary, the outputs, the annotations (on the playbook line), the PR comment kept to
one, and model output that tries to inject a workflow command."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.action.runner import FakeGitHub, parse_log, pull_request_event, read_outputs, serve
from tests.action.workspace import PWNED, line_of, make_workspace, runner_env

from apr_qa.action.main import run_action
from apr_qa.action.outputs import OUTPUT_NAMES
from apr_qa.report.markdown import COMMENT_MARKER

TOKEN = "ghs_0123456789abcdefSECRET"
NUMBER = 7


@dataclass
class Run:
    code: int
    log: str
    env: dict[str, str]


@dataclass
class PullRequestRuns:
    root: Path
    github: FakeGitHub
    runs: list[Run]


def _run(env: dict[str, str]) -> Run:
    out = io.StringIO()
    code = run_action(env, out, backend="fake")
    return Run(code, out.getvalue(), env)


@pytest.fixture(scope="module")
def pr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PullRequestRuns]:
    """Two runs of the Action on the same pull request, against a local GitHub."""
    root = make_workspace(tmp_path_factory.mktemp("pr") / "repo")
    github = FakeGitHub("octo/models", TOKEN)
    with pytest.MonkeyPatch.context() as mp:
        for key in ("HF_HOME", "HF_TOKEN"):
            mp.delenv(key, raising=False)
        for url in serve(github):
            runs = []
            for _ in range(2):
                env = runner_env(
                    root,
                    "pull_request",
                    pull_request_event(NUMBER, "octo/models"),
                    playbooks="playbooks/*.yaml",
                    github_token=TOKEN,
                    verbose="true",
                )
                env["GITHUB_API_URL"] = url
                runs.append(_run(env))
            yield PullRequestRuns(root, github, runs)


def test_two_runs_leave_exactly_one_comment(pr: PullRequestRuns) -> None:
    (comment,) = pr.github.comments[NUMBER]
    assert comment["body"].startswith(COMMENT_MARKER)
    assert "org/scripted" in comment["body"] and "org/broken" in comment["body"]
    assert "https://github.test/octo/models/actions/runs/4242" in comment["body"]
    posts = [p for m, p in pr.github.requests if m == "POST"]
    assert len(posts) == 1, pr.github.requests
    # The second run found the first one's comment by its marker and did not add one.
    assert [m for m, _ in pr.github.requests].count("GET") == 2


def test_the_token_is_masked_before_anything_else(pr: PullRequestRuns) -> None:
    for run in pr.runs:
        first = run.log.splitlines()[0]
        assert first == f"::add-mask::{TOKEN}"
        assert run.log.count(TOKEN) == 1


def test_the_job_summary_has_the_mqs_table(pr: PullRequestRuns) -> None:
    summary = Path(pr.runs[0].env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert "| Model | MQS | Grade | Status |" in summary
    verdict = json.loads((pr.root / "apr-qa-report" / "summary.json").read_text())
    for model in verdict["models"]:
        row = f"| {model['model']} | {model['mqs']} | {model['grade']} |"
        assert row in summary, row


def test_outputs_parse_and_agree_with_the_verdict(pr: PullRequestRuns) -> None:
    outputs = read_outputs(Path(pr.runs[0].env["GITHUB_OUTPUT"]))
    assert tuple(outputs) == OUTPUT_NAMES
    verdict = json.loads((pr.root / "apr-qa-report" / "summary.json").read_text())
    assert int(outputs["mqs"]) == min(m["mqs"] for m in verdict["models"])
    # org/broken does not load: a gateway failed, the run fails, the exit code says so.
    assert outputs["gateways"] == "failed"
    assert outputs["result"] == "fail" and pr.runs[0].code == 1
    assert int(outputs["failed"]) >= 2  # the greet scenario and org/broken's G1
    assert Path(outputs["junit-path"]).is_file()
    assert Path(outputs["report-dir"]) == pr.root / "apr-qa-report"


def test_annotations_are_well_formed_and_on_the_playbook_line(pr: PullRequestRuns) -> None:
    log = pr.runs[0].log
    errors = [c for c in parse_log(log) if c.name == "error"]
    assert errors
    for command in errors:
        # Every property escaped: no raw ':' ',' CR or LF inside a value, nor CR/LF in the message.
        head = command.raw.split("::")[1]
        assert all(ch not in head.split(" ", 1)[1].replace("=", "", 0) for ch in "\r\n")
        assert set(command.properties) == {"file", "line", "col", "title"}
        assert "\n" not in command.raw
    by_file = {}
    for command in errors:
        by_file.setdefault(command.properties["file"], []).append(command)
    scripted = pr.root / "playbooks" / "scripted.yaml"
    broken = pr.root / "playbooks" / "broken.yaml"
    (greet,) = by_file["playbooks/scripted.yaml"]
    assert int(greet.properties["line"]) == line_of(scripted, "- name: greet")
    assert "greet" in greet.message
    # A failure with no scenario points at the key that governs it: org/broken's G1 at model.
    (load,) = [
        c for c in by_file["playbooks/broken.yaml"] if c.properties["title"].startswith("G1")
    ]
    assert int(load.properties["line"]) == line_of(broken, "model:")


def test_model_output_cannot_inject_a_workflow_command(pr: PullRequestRuns) -> None:
    log = pr.runs[0].log
    # The injected line reached the log verbatim (verbose echoes failing outputs) ...
    assert PWNED in log.splitlines()
    # ... which a runner would obey if it were not fenced off:
    assert [c.message for c in parse_log(PWNED)] == ["pwned"]
    assert all(c.message != "pwned" for c in parse_log(log))


def test_a_read_only_token_gives_a_notice_not_a_failure(
    pr: PullRequestRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    github = FakeGitHub("octo/models", TOKEN, writable=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    for url in serve(github):
        env = dict(pr.runs[0].env, GITHUB_API_URL=url)
        env["INPUT_OUTPUT-DIR"] = "fork-report"
        env["INPUT_PLAYBOOKS"] = "playbooks/scripted.yaml"
        run = _run(env)
    notices = [c.message for c in parse_log(run.log) if c.name == "notice"]
    assert any("no PR comment" in n and "403" in n for n in notices), notices
    assert not github.comments.get(NUMBER)
    # The verdict decides the exit code, not the comment: scripted fails one scenario (C floor).
    verdict = json.loads((pr.root / "fork-report" / "summary.json").read_text())
    assert run.code == (0 if all(m["passed"] for m in verdict["models"]) else 1)
