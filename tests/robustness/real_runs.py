"""Helpers for the robustness tests that drive real `apr-qa run` processes: playbooks
on the committed tiny llama, the evidence lines written so far, and the marker that
tells this test's workers apart from everyone else's (see tests/execute/own_workers.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tests.conftest import REPO
from tests.execute.own_workers import OWNER_VAR

from apr_qa.fixtures import fixture_path

__all__ = [
    "START_BOUND_S",
    "complete_lines",
    "decided_ids",
    "start_run",
    "tiny_llama_playbook",
    "wait_for_records",
    "worker_owner",
]

START_BOUND_S = 300
"""How long a run on a busy machine may take to decide its first records before the
test gives up. Not a timing assertion: it only ends a wait that would otherwise hang."""


@pytest.fixture
def worker_owner(monkeypatch: pytest.MonkeyPatch) -> str:
    """Mark the environment this test's workers inherit, so only they are counted."""
    marker = f"{os.getpid()}-{uuid.uuid4().hex}"
    monkeypatch.setenv(OWNER_VAR, marker)
    return marker


def tiny_llama_playbook(
    tmp_path: Path,
    name: str,
    *,
    formats: str = "[gguf]",
    modalities: str = "[run]",
    scenario_count: int = 0,
) -> Path:
    """A playbook on the committed tiny llama (GGUF q8_0, safetensors), one explicit
    scenario it answers, plus ``scenario_count`` generated ones per cell."""
    model = fixture_path("tiny-llama")
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: {{id: apr-qa/tiny-llama, path: {model}}}\n"
        f"test_matrix: {{modalities: {modalities}, backends: [cpu], formats: {formats},"
        f" quantizations: [q8_0], scenario_count: {scenario_count}, seed: 3, max_tokens: 16,"
        " timeout_ms: 60000}\n"
        "failure_policy: collect-all\n"
        "scenarios:\n"
        "  - {name: add, prompt: 'What is 2 + 3?', oracle: arithmetic, expected: 5}\n",
        encoding="utf-8",
    )
    return path


def start_run(*args: str) -> subprocess.Popen[str]:
    """``apr-qa run ARGS`` in a session of its own: signals sent to it reach it only."""
    return subprocess.Popen(
        [sys.executable, "-m", "apr_qa.cli", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )


def complete_lines(path: Path) -> list[str]:
    """The evidence lines written so far, without a last line still being written."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    return text.splitlines()[: text.count("\n")]


def decided_ids(lines: list[str]) -> set[str]:
    """The record ids of evidence lines (model-facts lines are not records)."""
    return {data["record_id"] for data in map(json.loads, lines) if "record_id" in data}


def wait_for_records(proc: subprocess.Popen[str], evidence: Path, count: int = 1) -> None:
    """Wait until the run has decided ``count`` records (it must still be running)."""
    deadline = time.monotonic() + START_BOUND_S
    while len(complete_lines(evidence)) < count:
        assert proc.poll() is None, f"the run ended early ({proc.returncode})"
        assert time.monotonic() < deadline, f"fewer than {count} records within the bound"
        time.sleep(0.05)
