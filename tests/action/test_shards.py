"""A matrix of shards, then a merge job: each shard's evidence under its own name, and
the merge job's verdict covering every shard's checks."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from tests.action.runner import push_event, read_outputs
from tests.action.workspace import make_workspace, runner_env

from apr_qa.action.main import run_action


def test_shards_then_a_merge_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HOME", raising=False)
    root = make_workspace(tmp_path / "repo")
    passed = 0
    for k in (1, 2):
        env = runner_env(
            root, "push", push_event("octo/models"), playbooks="playbooks/*.yaml", shard=f"{k}/2"
        )
        run_action(env, io.StringIO(), backend="fake")
        outputs = read_outputs(Path(env["GITHUB_OUTPUT"]))
        assert outputs["report-dir"] == str(root / "apr-qa-report" / f"shard-{k}-of-2")
        assert (root / "apr-qa-report" / f"shard-{k}-of-2" / "evidence.jsonl").is_file()
        passed += int(outputs["passed"])
    env = runner_env(
        root,
        "push",
        push_event("octo/models"),
        evidence="apr-qa-report/**/evidence.jsonl",
        output_dir="merged",
    )
    code = run_action(env, io.StringIO())
    merged = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert int(merged["passed"]) == passed
    verdict = json.loads((root / "merged" / "summary.json").read_text())
    assert sorted(m["model"] for m in verdict["models"]) == ["org/broken", "org/scripted"]
    assert sorted(verdict["models"][0]["shards"] + verdict["models"][1]["shards"]) == ["1/2", "2/2"]
    assert code == 1 and merged["gateways"] == "failed"


def test_playbooks_and_evidence_together_are_refused(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo")
    (root / "e.jsonl").write_text("")
    env = runner_env(
        root, "push", push_event("octo/models"), playbooks="playbooks/*.yaml", evidence="e.jsonl"
    )
    out = io.StringIO()
    assert run_action(env, out) == 2
    assert "give playbooks to run or evidence to merge, not both" in out.getvalue()


def test_as_root_what_it_wrote_goes_back_to_the_workspace_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give files away (the self-hosted runner case)")
    monkeypatch.delenv("HF_HOME", raising=False)
    root = make_workspace(tmp_path / "repo", broken=False)
    os.chown(root, 4321, 4321)
    env = runner_env(root, "push", push_event("octo/models"), playbooks="playbooks/*.yaml")
    run_action(env, io.StringIO(), backend="fake")
    written = [root / "apr-qa-report", *(root / "apr-qa-report").iterdir()]
    assert len(written) > 3
    assert {(p.stat().st_uid, p.stat().st_gid) for p in written} == {(4321, 4321)}
