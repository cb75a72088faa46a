"""A model trained on another prompt form holds G0-G4 when the playbook speaks its form.

tiny-qa learned ``Question: ...\\nAnswer:`` prompts and chat turns of its own, never
the built-in probe "What is 2 + 2?"; on a bare question it stays silent. Run through
``apr-qa run`` with examples/tiny-qa.playbook.yaml, every committed artifact in both
modalities must hold every gateway, and G2 must have been decided on the playbook's
prompts: a G2 that still probed with the built-in prompt would block this model.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from apr_qa import oracles
from apr_qa.backends import Backend, create_backend
from apr_qa.evidence import Outcome, Record, read_evidence
from apr_qa.fixtures import fixture_path
from apr_qa.playbook import load_playbook

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "examples" / "tiny-qa.playbook.yaml"
FIXTURE = "tiny-qa"
BUILT_IN_PROBE = "What is 2 + 2?"
GATEWAYS = ("G0-", "G1-", "G2-", "G3-", "G4-")


def _quants() -> list[str]:
    return sorted(p.stem.removeprefix(f"{FIXTURE}-") for p in fixture_path(FIXTURE).glob("*.gguf"))


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], list[Record]]:
    out = tmp_path_factory.mktemp("tiny-qa-run")
    # --fail-below F: the exit status then speaks of the gateways alone (this playbook
    # assesses too few categories for a grade to mean anything).
    command = [sys.executable, "-m", "apr_qa.cli", "run", str(PLAYBOOK), "-o", str(out)]
    result = subprocess.run(
        [*command, "--workers", "2", "--fail-below", "F"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    read = read_evidence([out / "evidence.jsonl"])
    assert read.warnings == []
    return result, read.records


def _not_held(records: list[Record]) -> list[tuple[str, str, str, str]]:
    return [
        (r.gate, r.cell, str(r.outcome), r.reason)
        for r in records
        if r.gate.startswith(GATEWAYS)
        and r.outcome is not Outcome.CORROBORATED
        # A safetensors checkpoint has no GGUF header to check; that gate skips it.
        and not (r.gate == "G0-INTEGRITY-005" and r.format == "safetensors")
    ]


def test_every_artifact_and_modality_holds_g0_to_g4(
    run: tuple[subprocess.CompletedProcess[str], list[Record]],
) -> None:
    result, records = run
    assert _not_held(records) == []
    cells = {(r.format, r.quantization, r.modality) for r in records if r.gate == "G1-LOAD-001"}
    gguf = {(q, m) for f, q, m in cells if f == "gguf"}
    assert gguf == {(q, m) for q in _quants() for m in ("run", "chat")}
    assert {m for f, _, m in cells if f == "safetensors"} == {"run", "chat"}
    for gate in ("G1-LOAD-001", "G2-INFER-001", "G3-CRASH-001", "G3-HANG-001"):
        assert len([r for r in records if r.gate == gate]) == len(cells), gate
    artifacts = {(f, q) for f, q, _ in cells}
    for gate in ("G0-INTEGRITY-001", "G0-INTEGRITY-002", "G0-INTEGRITY-003"):
        assert {(r.format, r.quantization) for r in records if r.gate == gate} == artifacts
    assert [r.outcome for r in records if r.gate == "G4-GARBAGE-001"] == [Outcome.CORROBORATED]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def _turns(messages: Sequence[Mapping[str, str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], m["content"]) for m in messages or ())


def test_g2_was_decided_on_the_playbooks_own_prompts(
    run: tuple[subprocess.CompletedProcess[str], list[Record]],
) -> None:
    # Each G2 record names the probe that yielded text: it must be one of the
    # playbook's scenarios in the cell's modality, not a prompt of apr-qa's own.
    _, records = run
    book = load_playbook(PLAYBOOK)
    own_runs = {s.prompt for s in book.scenarios if s.applies_to("run")}
    own_chats = {_turns(s.messages) for s in book.scenarios if s.messages is not None}
    g2 = [r for r in records if r.gate == "G2-INFER-001"]
    assert len(g2) == 2 * (1 + len(_quants()))
    for r in g2:
        assert r.scenario is not None, r.cell
        if r.modality == "run":
            assert r.scenario.prompt in own_runs, (r.cell, r.scenario)
        else:
            assert _turns(r.scenario.messages) in own_chats, (r.cell, r.scenario)
        asked = [r.scenario.prompt or ""] + [c for _, c in _turns(r.scenario.messages)]
        assert not any(BUILT_IN_PROBE in text for text in asked), r.cell
        assert r.output is not None and r.output.strip(), r.cell


def test_every_scenario_in_the_models_form_is_answered(
    run: tuple[subprocess.CompletedProcess[str], list[Record]],
) -> None:
    _, records = run
    answers = [r for r in records if r.gate in ("F-A1-001", "F-A2-001")]
    # 4 run scenarios + 3 chat scenarios in each of the artifacts.
    assert len(answers) == 7 * (1 + len(_quants()))
    wrong = [
        (r.cell, r.scenario.name if r.scenario else "", r.output, r.reason)
        for r in answers
        if r.outcome is not Outcome.CORROBORATED
    ]
    assert wrong == []


# --- the model really was not trained on the built-in probe ---------------------------


def _artifacts() -> list[tuple[str, Path]]:
    root = fixture_path(FIXTURE)
    return [("transformers", root)] + [
        ("llama_cpp", root / f"{FIXTURE}-{q}.gguf") for q in _quants()
    ]


@pytest.fixture(scope="module", params=_artifacts(), ids=lambda a: a[1].name)
def loaded(request: pytest.FixtureRequest) -> Iterator[Backend]:
    kind, path = request.param
    backend = create_backend(kind)
    backend.load(path, "cpu")
    yield backend
    backend.close()


def _judge(backend: Backend, prompt: str) -> oracles.Verdict:
    text = backend.generate(prompt=prompt, max_tokens=16, temperature=0, seed=0).text
    return oracles.create("arithmetic")(text, prompt=prompt)


def test_the_built_in_probe_gets_no_right_answer(loaded: Backend) -> None:
    verdict = _judge(loaded, BUILT_IN_PROBE)
    assert not verdict.passed, verdict.reason
    # The same arithmetic, asked in the model's own form, is answered.
    own = _judge(loaded, "Question: What is 2 times 3?\nAnswer:")
    assert own.passed, own.reason
