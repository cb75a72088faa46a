"""F-CONV-001..006: every clean fixture converts cleanly with the reference converter
(f32 and q8_0: same tensors, same tokens, the golden rule holds, the same bytes
twice), and every broken converter (apr_qa.testing.broken_converters) is put in
its own bug class, from tensor and token evidence, by the product's check.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from apr_qa import api
from apr_qa.checks import Artifact
from apr_qa.checks.bug_class import GATE_OF, BugClass, ConversionEvidence, classify
from apr_qa.checks.conversion import (
    ConversionCheck,
    Reference,
    examine,
    findings_of,
    reference_of,
)
from apr_qa.checks.differential import Switch
from apr_qa.evidence import Outcome, read_evidence
from apr_qa.execute.records import CellRef
from apr_qa.fixtures import fixture_names, fixture_path
from apr_qa.playbook import load_playbook
from apr_qa.playbook.model import Playbook
from apr_qa.testing.broken_converters import BROKEN_CONVERTERS, command
from apr_qa.testing.broken_converters import convert as broken_convert

FIXTURE = "tiny-qa"
PROMPTS = ["What is 2 + 3?\nAnswer:", "The capital of France is"]


def _playbook(tmp_path: Path, conversion: str, model: str = "{id: org/conv}") -> Path:
    path = tmp_path / "conv.yaml"
    path.write_text(
        f"name: conv\nmodel: {model}\n"
        "test_matrix: {modalities: [run], backends: [cpu], formats: [safetensors]}\n"
        'scenarios:\n  - {name: s, prompt: "What is 2 + 3?", oracle: garbage}\n'
        f"differential_tests:\n  conversion: {conversion}\n"
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fixture", fixture_names())
def test_clean_conversion_corroborates(tmp_path: Path, fixture: str) -> None:
    # The golden rule's two forms: identical answers (f32), top-1 agreement (q8_0).
    quants = "[f32, q8_0]" if fixture == FIXTURE else "[q8_0]"
    book = load_playbook(_playbook(tmp_path, f"{{quantizations: {quants}}}"))
    artifact = Artifact(book, CellRef("org/conv", "safetensors"), fixture_path(fixture), "local")
    findings = {f.gate: f for f in ConversionCheck().check(book, [artifact])}
    assert set(findings) == set(GATE_OF.values())
    for gate, finding in findings.items():
        assert finding.outcome is Outcome.CORROBORATED, (gate, finding.reason)
        assert finding.details["compared"] == len(quants.split(","))


@pytest.fixture(scope="module")
def reference() -> Reference:
    """tiny-qa's side, computed once for every broken converter."""
    ref = reference_of(fixture_path(FIXTURE), PROMPTS, 8)
    assert isinstance(ref, Reference), ref
    return ref


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BROKEN_CONVERTERS))
def test_broken_converter_is_put_in_its_bug_class(
    reference: Reference, tmp_path: Path, name: str
) -> None:
    broken = BROKEN_CONVERTERS[name]
    # In this process: the command path is the same function behind a subprocess
    # (test_a_converter_command_is_run), and each one would import transformers again.
    run = functools.partial(broken_convert, name)
    sw = Switch(True, None, {}, {})
    evidence = examine(fixture_path(FIXTURE), broken.quant, run, lambda: reference, sw, tmp_path)
    assert set(classify(evidence)) == {broken.bug_class}, evidence
    findings = {f.gate: f for f in findings_of([(name, evidence)])}
    assert findings[GATE_OF[broken.bug_class]].outcome is Outcome.FALSIFIED
    others = {g: f.outcome for g, f in findings.items() if g != GATE_OF[broken.bug_class]}
    assert Outcome.FALSIFIED not in others.values(), others


def _artifact(book: Playbook) -> Artifact:
    return Artifact(book, CellRef("org/conv", "safetensors"), fixture_path(FIXTURE), "local")


def test_playbook_switch_and_gates_act(tmp_path: Path) -> None:
    off = load_playbook(_playbook(tmp_path, "{enabled: false}"))
    assert list(ConversionCheck().check(off, [_artifact(off)])) == []
    fails = load_playbook(
        _playbook(tmp_path, f"{{command: '{command('exits-nonzero')}', gates: [F-CONV-006]}}")
    )
    findings = list(ConversionCheck().check(fails, [_artifact(fails)]))
    assert [(f.gate, f.outcome) for f in findings] == [("F-CONV-006", Outcome.FALSIFIED)]
    assert "exit status 3" in findings[0].reason


def test_drift_is_attributed_to_a_structural_class_when_one_explains_it() -> None:
    explained = ConversionEvidence(produced=True, values=("w: off",), drift=("answers differ",))
    assert set(classify(explained)) == {BugClass.WEIGHT_CORRUPTION}
    findings = {f.gate: f for f in findings_of([("x", explained)])}
    assert findings["F-CONV-005"].outcome is Outcome.SKIPPED
    assert "explained by weight corruption (F-CONV-003)" in findings["F-CONV-005"].reason
    alone = ConversionEvidence(produced=True, drift=("answers differ",))
    assert set(classify(alone)) == {BugClass.SEMANTIC_DRIFT}
    nothing = ConversionEvidence(produced=True, unavailable=("did not load",))
    assert set(classify(nothing)) == {BugClass.UNKNOWN}
    assert classify(ConversionEvidence(produced=True, reproducible=True)) == {}


@pytest.mark.slow
def test_a_converter_command_is_run(tmp_path: Path) -> None:
    """A command template gets its paths quoted and its output examined: a "converter"
    that copies the fixture's committed GGUF is a clean conversion."""
    gguf = fixture_path(FIXTURE) / f"{FIXTURE}-q8_0.gguf"
    book = load_playbook(
        _playbook(tmp_path, f"{{quantizations: [q8_0], command: 'cp {gguf} {{dst}}'}}")
    )
    findings = {f.gate: f.outcome for f in ConversionCheck().check(book, [_artifact(book)])}
    assert set(findings.values()) == {Outcome.CORROBORATED}, findings


@pytest.mark.slow
@pytest.mark.parametrize(
    ("converter", "falsified"),
    [(None, set()), ("embedding-transposed", {"F-CONV-001"})],
    ids=["reference", "embedding-transposed"],
)
def test_conversion_through_the_engine(
    tmp_path: Path, converter: str | None, falsified: set[str]
) -> None:
    """`apr-qa run` on a playbook with `differential_tests.conversion`: one record per
    F-CONV gate in evidence.jsonl, the broken converter's class falsified (and only
    it), the clean conversion corroborated, and COMP assessed either way."""
    options = "{quantizations: [f32]" + (
        f", command: '{command(converter)}'}}" if converter else "}"
    )
    book = _playbook(tmp_path, options, f"{{id: org/conv, path: '{fixture_path(FIXTURE)}'}}")
    result = api.run(api.load([book]), api.RunConfig(output_dir=tmp_path / "out"))
    records = [
        r
        for r in read_evidence([tmp_path / "out" / "evidence.jsonl"]).records
        if r.gate.startswith("F-CONV-")
    ]
    assert {r.gate for r in records} == set(GATE_OF.values())
    assert {r.gate for r in records if r.outcome is Outcome.FALSIFIED} == falsified
    if converter is None:
        assert {r.outcome for r in records} == {Outcome.CORROBORATED}
    else:
        (bad,) = [r for r in records if r.gate in falsified]
        assert "embedding transposition" in bad.reason
    assert result.report is not None
    (model,) = result.report.run.models
    (comp,) = [c for c in model.categories if c.category == "COMP"]
    assert comp.assessed
