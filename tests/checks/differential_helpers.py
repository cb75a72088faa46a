"""Building what a MODEL-stage check sees: a loaded playbook and its artifacts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from apr_qa.checks import Artifact, Finding
from apr_qa.execute.records import CellRef
from apr_qa.fixtures import fixture_path
from apr_qa.playbook import load_playbook
from apr_qa.playbook.model import Playbook


def gguf_of(fixture: str, quant: str) -> Path:
    """A fixture's committed GGUF file."""
    return fixture_path(fixture) / f"{fixture}-{quant}.gguf"


def model_stage(
    folder: Path,
    reference: Path | None,
    ggufs: Sequence[tuple[Path, str]],
    differential: Mapping[str, Any] | None = None,
    prompts: Sequence[str] = ("What is 2 + 3?",),
) -> tuple[Playbook, list[Artifact]]:
    """A playbook whose matrix loads ``reference`` (safetensors) and ``ggufs``
    (path, quantization), and the artifacts the supervisor would hand the model stage."""
    lines = [
        "name: diff",
        "model: {id: apr-qa/diff}",
        "test_matrix: {modalities: [run], backends: [cpu], formats: [safetensors, gguf]}",
        "scenarios:",
        *(f"  - {json.dumps({'name': f's{i}', 'prompt': p})}" for i, p in enumerate(prompts)),
    ]
    if differential is not None:
        lines.append(f"differential_tests: {json.dumps(dict(differential))}")
    path = folder / "diff.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    playbook = load_playbook(path)
    assert playbook.warnings == (), playbook.warnings
    artifacts = []
    if reference is not None:
        artifacts.append(
            Artifact(playbook, CellRef("apr-qa/diff", "safetensors", "-"), reference, "local")
        )
    for gguf, quant in ggufs:
        artifacts.append(Artifact(playbook, CellRef("apr-qa/diff", "gguf", quant), gguf, "local"))
    return playbook, artifacts


def by_gate(findings: Iterable[Finding]) -> dict[str, Finding]:
    """Findings by gate, each gate at most once."""
    out: dict[str, Finding] = {}
    for finding in findings:
        assert finding.gate not in out, finding.gate
        out[finding.gate] = finding
    return out
