"""F-TRACE-PAYLOAD-001..003 through the engine on the fake backend: when the check
runs, what it records, and how its settings act. The real runtimes' mutants (a NaN
weight, exploding activations, the PAD flood) are held to these gates by the mutant
walk (tests/models/test_mutant_walk.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from apr_qa.checks.trace import layer_report
from apr_qa.evidence import Outcome, Record, read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.playbook import load_playbook

TRACE = ("F-TRACE-PAYLOAD-001", "F-TRACE-PAYLOAD-002", "F-TRACE-PAYLOAD-003")


def _run(tmp_path: Path, trace: str | None, answer: str, fmt: str = "safetensors") -> list[Record]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = tmp_path / "model.json"
    model.write_text(json.dumps({"answers": {}, "default": answer}))
    book = tmp_path / "book.yaml"
    book.write_text(
        f"name: tr\nmodel: {{id: org/tr, path: {model}}}\n"
        f"test_matrix: {{modalities: [run, chat], backends: [cpu], formats: [{fmt}],"
        " max_tokens: 16}\n"
        "failure_policy: collect-all\n"
        'scenarios:\n  - {name: s, prompt: "Say hi.", oracle: garbage}\n'
        + (f"trace_payload: {trace}\n" if trace is not None else "")
    )
    out = tmp_path / "out"
    execute([load_playbook(book)], RunOptions(output_dir=out, backend_override="fake"))
    read = read_evidence([out / "evidence.jsonl"])
    assert read.warnings == []
    return [r for r in read.records if r.gate in TRACE]


def _by_gate(records: list[Record]) -> dict[str, Record]:
    assert len({r.gate for r in records}) == len(records), "one record per gate"
    return {r.gate: r for r in records}


def test_traced_once_per_artifact_in_the_first_modality(tmp_path: Path) -> None:
    records = _by_gate(_run(tmp_path, "{enabled: true}", "Hello there, friend."))
    assert set(records) == set(TRACE)
    assert {r.modality for r in records.values()} == {"run"}
    assert {r.outcome for r in records.values()} == {Outcome.CORROBORATED}
    assert "finite" in records["F-TRACE-PAYLOAD-001"].reason
    assert records["F-TRACE-PAYLOAD-003"].metrics["max_activation_rms"] > 0


def test_no_section_or_switched_off_traces_nothing(tmp_path: Path) -> None:
    assert _run(tmp_path / "none", None, "Hello there.") == []
    assert _run(tmp_path / "off", '{enabled: "false"}', "Hello there.") == []


def test_garbage_answer_falsifies_002(tmp_path: Path) -> None:
    records = _by_gate(_run(tmp_path, "{prompt: Trace me}", "   "))
    assert records["F-TRACE-PAYLOAD-002"].outcome is Outcome.FALSIFIED
    assert "empty" in records["F-TRACE-PAYLOAD-002"].reason
    assert records["F-TRACE-PAYLOAD-001"].outcome is Outcome.CORROBORATED


def test_activation_ceiling_and_gate_list_act(tmp_path: Path) -> None:
    # The fake's first "layer" holds token ids: an RMS in the tens, over a ceiling of 1.
    records = _by_gate(
        _run(tmp_path, "{max_activation_rms: 1, gates: [F-TRACE-PAYLOAD-003]}", "Hello there.")
    )
    assert set(records) == {"F-TRACE-PAYLOAD-003"}
    assert records["F-TRACE-PAYLOAD-003"].outcome is Outcome.FALSIFIED
    assert "limit 1;" in records["F-TRACE-PAYLOAD-003"].reason


def test_gguf_is_traced_by_its_logits(tmp_path: Path) -> None:
    records = _by_gate(_run(tmp_path, "{enabled: true}", "Hello there, friend.", fmt="gguf"))
    assert records["F-TRACE-PAYLOAD-001"].outcome is Outcome.CORROBORATED
    assert "final logits" in records["F-TRACE-PAYLOAD-001"].reason
    assert records["F-TRACE-PAYLOAD-003"].outcome is Outcome.SKIPPED
    assert "no per-layer activations" in records["F-TRACE-PAYLOAD-003"].reason


def test_layer_report_finds_the_first_non_finite_layer() -> None:
    states = np.ones((3, 2, 4), dtype=np.float32)
    assert layer_report(states) == (None, [1.0, 1.0, 1.0])
    states[2, :, 0] = np.nan
    states[1, 0, :] = 300.0
    first, rms = layer_report(states)
    assert first == 2 and rms[1] == 300.0
    assert rms[2] == np.sqrt(3 / 4)  # each token's NaN counted as 0
