"""The gates of generated scenario families, through the engine on the fake backend.

F-EDGE-001 (unicode, whitespace and injection prompts) and F-STAB-DET-001 (the
same prompt twice at temperature 0) are recorded by generated scenarios only:
a model that parrots its prompt back, injected special tokens and all, breaks
the edge gate; one that answers plainly and the same way twice holds both.
"""

from __future__ import annotations

import json
from pathlib import Path

from apr_qa.evidence import Outcome, Record, read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.playbook import load_playbook

# Ten generated scenarios: two of each family, every family's gate recorded twice.
COUNT = 10


def _run(tmp_path: Path, **behaviour: object) -> list[Record]:
    model = tmp_path / "model.json"
    model.write_text(json.dumps({"answers": {}, **behaviour}))
    book = tmp_path / "book.yaml"
    book.write_text(
        f"name: gen\nmodel: {{id: org/gen, path: {model}}}\n"
        "test_matrix: {modalities: [run, chat], backends: [cpu], formats: [gguf],"
        f" quantizations: [q8_0], scenario_count: {COUNT}, seed: 7, max_tokens: 64}}\n"
        "failure_policy: collect-all\n"
    )
    out = tmp_path / "out"
    execute([load_playbook(book)], RunOptions(output_dir=out, backend_override="fake"))
    read = read_evidence([out / "evidence.jsonl"])
    assert read.warnings == []
    return read.records


def _outcomes(records: list[Record], gate: str) -> list[Outcome]:
    return [r.outcome for r in records if r.gate == gate]


def test_edge_gate_falsified_by_a_model_that_echoes_injected_tokens(tmp_path: Path) -> None:
    records = _run(tmp_path, default=None)  # None: the fake echoes the prompt
    falsified = [r for r in records if r.gate == "F-EDGE-001" and r.outcome is Outcome.FALSIFIED]
    assert falsified
    # The injected tokens came back: the injection family says so.
    assert any(r.scenario and r.scenario.name.startswith("injection") for r in falsified)


def test_edge_and_determinism_gates_corroborated_by_a_plain_steady_model(tmp_path: Path) -> None:
    records = _run(tmp_path, default="I am a fine model, and that is my answer.")
    for gate in ("F-EDGE-001", "F-STAB-DET-001"):
        outcomes = _outcomes(records, gate)
        assert outcomes and set(outcomes) == {Outcome.CORROBORATED}, (
            gate,
            [(r.scenario.name if r.scenario else "", r.reason) for r in records if r.gate == gate],
        )
