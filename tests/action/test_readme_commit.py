"""The certification commit on push, against a real local bare remote: two identical
runs make exactly one commit; a push that lands in between is rebased over; a pull
request never commits."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.action.runner import parse_log, pull_request_event, push_event, read_outputs
from tests.action.workspace import make_workspace, runner_env

from apr_qa.action.main import run_action
from apr_qa.action.readme_commit import BOT_NAME
from apr_qa.certify.table import END, START

README = f"# Models\n\nIntro kept as written.\n\n{START}\n{END}\n\nOutro kept too.\n"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-c",
            "safe.directory=*",
            "-c",
            "user.name=dev",
            "-c",
            "user.email=dev@example.test",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def remote_log(remote: Path) -> list[tuple[str, str]]:
    """(author, subject) of every commit on the remote's main, newest first."""
    text = git(remote, "log", "--format=%an%x09%s", "main")
    return [tuple(line.split("\t", 1)) for line in text.splitlines()]  # type: ignore[misc]


@dataclass
class Pushes:
    remote: Path
    workspace: Path
    logs: list[str]
    codes: list[int]
    outputs: list[dict[str, str]]
    history: list[list[tuple[str, str]]]
    """The remote's log after each run."""


def _action(workspace: Path, event: str, payload: dict[str, object]) -> tuple[int, str, Path]:
    env = runner_env(
        workspace,
        event,
        payload,
        playbooks="playbooks/scripted.yaml",
        update_readme="true",
        badges_dir="badges",
        output_dir="apr-qa-report",
    )
    out = io.StringIO()
    code = run_action(env, out, backend="fake")
    return code, out.getvalue(), Path(env["GITHUB_OUTPUT"])


@pytest.fixture(scope="module")
def pushes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushes]:
    """A repository on a bare remote; a colleague pushes after our checkout; then the
    Action runs twice on push in our (stale) checkout."""
    base = tmp_path_factory.mktemp("push")
    remote = base / "remote.git"
    git(base, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    seed = base / "seed"
    git(base, "clone", "--quiet", str(remote), str(seed))
    make_workspace(seed, broken=False)
    (seed / "README.md").write_text(README)
    (seed / ".gitignore").write_text("apr-qa-report/\n.cache/\n")
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "models and playbooks")
    git(seed, "push", "--quiet", "origin", "main")
    workspace = base / "workspace"
    git(base, "clone", "--quiet", str(remote), str(workspace))
    # A colleague's push lands after our checkout: our first push is rejected.
    (seed / "NOTES.md").write_text("pushed while the Action ran\n")
    git(seed, "add", "NOTES.md")
    git(seed, "commit", "--quiet", "-m", "colleague's change")
    git(seed, "push", "--quiet", "origin", "main")
    logs, codes, outputs, history = [], [], [], []
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HF_HOME", raising=False)
        for run in range(3):
            if run == 2:  # the model now passes the scenario it failed: a real change
                model = workspace / "models" / "scripted.json"
                script = json.loads(model.read_text())
                script["answers"]["Say hello."] = "hello and goodbye"
                model.write_text(json.dumps(script))
            code, log, output = _action(workspace, "push", push_event("octo/models"))
            logs.append(log)
            codes.append(code)
            outputs.append(read_outputs(output))
            history.append(remote_log(remote))
    yield Pushes(remote, workspace, logs, codes, outputs, history)


def test_two_identical_runs_make_exactly_one_commit(pushes: Pushes) -> None:
    first, second, _ = pushes.history
    assert [author for author, _ in first].count(BOT_NAME) == 1, first
    assert first[0] == (BOT_NAME, "apr-qa: update model certification [skip ci]")
    # The second run re-certified the same verdicts (new timestamp): no commit.
    assert second == first
    assert "certification unchanged; nothing committed" in pushes.logs[1]


def test_a_changed_verdict_is_committed(pushes: Pushes) -> None:
    *_, third = pushes.history
    assert [author for author, _ in third].count(BOT_NAME) == 2, third
    assert pushes.outputs[2]["mqs"] != pushes.outputs[0]["mqs"]
    registry = git(pushes.remote, "show", "main:docs/certifications/models.csv")
    assert f",{pushes.outputs[2]['mqs']}," in registry


def test_a_push_in_between_is_rebased_over(pushes: Pushes) -> None:
    log = pushes.history[0]
    # Ours on top of the colleague's: rebased, nothing of theirs lost.
    assert [s for _, s in log[1:]] == ["colleague's change", "models and playbooks"]
    assert "2 push attempt(s)" in pushes.logs[0]
    assert git(pushes.remote, "show", "main:NOTES.md") == "pushed while the Action ran"


def test_the_commit_holds_the_readme_table_registry_and_badge(pushes: Pushes) -> None:
    files = git(pushes.remote, "show", "--name-only", "--format=", "main~1").splitlines()
    assert sorted(files) == [
        "README.md",
        "badges/org__scripted.json",
        "docs/certifications/models.csv",
    ]
    readme = git(pushes.remote, "show", "main~1:README.md")
    assert readme.startswith("# Models\n\nIntro kept as written.")
    assert readme.rstrip().endswith("Outro kept too.")
    block = readme.split(START)[1].split(END)[0]
    first = pushes.outputs[0]
    assert f"| {first['mqs']} | {first['grade']} |" in block


def test_a_pull_request_never_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HOME", raising=False)
    workspace = make_workspace(tmp_path / "repo", broken=False)
    (workspace / "README.md").write_text(README)
    git(workspace, "init", "--quiet", "--initial-branch=main")
    git(workspace, "add", "-A")
    git(workspace, "commit", "--quiet", "-m", "start")
    head = git(workspace, "rev-parse", "HEAD")
    code, log, _ = _action(workspace, "pull_request", pull_request_event(3, "octo/models"))
    notices = [c.message for c in parse_log(log) if c.name == "notice"]
    assert any("update-readme is ignored on pull requests" in n for n in notices), notices
    assert git(workspace, "rev-parse", "HEAD") == head
    assert (workspace / "README.md").read_text() == README
    assert code in (0, 1)
