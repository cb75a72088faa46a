"""A playbook with safetensors plus GGUF assesses COMP through the whole product:
``api.run`` records the differential gates at the model stage, and summary.json
and the reports show the category."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apr_qa import api
from apr_qa.evidence import Outcome
from apr_qa.fixtures import fixture_path, load_prompts

pytestmark = pytest.mark.slow

DIFFERENTIAL = ("F-ROSETTA-DIFF-", "F-ROSETTA-INF-", "F-TOK-PARITY-")


def _playbook(tmp: Path, fixture: str, formats: str) -> Path:
    prompt = next(p for p in load_prompts(fixture) if p.prompt and p.oracle == "arithmetic")
    path = tmp / f"{fixture}.yaml"
    path.write_text(
        f"name: {fixture}\n"
        f"model: {{id: apr-qa/{fixture}, path: {json.dumps(str(fixture_path(fixture)))}}}\n"
        f"test_matrix: {{modalities: [run], backends: [cpu], formats: {formats},"
        " quantizations: [q8_0], max_tokens: 16}\n"
        "failure_policy: collect-all\n"
        "scenarios:\n"
        f"  - {{name: sum, prompt: {json.dumps(prompt.prompt)}, oracle: arithmetic,"
        f" expected: {int(prompt.expected)}}}\n",
        encoding="utf-8",
    )
    return path


def test_safetensors_plus_gguf_assesses_comp(tmp_path: Path) -> None:
    fixture = "tiny-qa"  # another prompt form than the other fixtures
    result = api.run(
        [_playbook(tmp_path, fixture, "[safetensors, gguf]")], api.RunConfig(tmp_path / "out")
    )
    records = [r for r in result.outcome.records if r.gate.startswith(DIFFERENTIAL)]
    assert len({r.gate for r in records}) == 9 and len(records) == 9
    assert {r.outcome for r in records} == {Outcome.CORROBORATED}, [
        (r.gate, r.reason) for r in records if r.outcome is not Outcome.CORROBORATED
    ]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (model,) = summary["models"]
    comp = next(c for c in model["categories"] if c["category"] == "COMP")
    assert comp["assessed"] and comp["executed"] == comp["passed"] == 9
    assert "| COMP | 150.0 / 150 | 9 / 9 |" in (tmp_path / "out" / "summary.md").read_text()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<strong>COMP</strong>" in html and "150.0 / 150 · 9/9 passed" in html


def test_one_format_leaves_comp_unassessed_and_says_why(tmp_path: Path) -> None:
    fixture = "tiny-qa"
    result = api.run(
        [_playbook(tmp_path, fixture, "[safetensors]")], api.RunConfig(tmp_path / "out")
    )
    records = [r for r in result.outcome.records if r.gate.startswith(DIFFERENTIAL)]
    assert records and {r.outcome for r in records} == {Outcome.SKIPPED}
    assert all("no safetensors and GGUF pair" in r.reason for r in records)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    comp = next(c for c in summary["models"][0]["categories"] if c["category"] == "COMP")
    assert not comp["assessed"]
