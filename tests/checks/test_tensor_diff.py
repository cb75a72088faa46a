"""F-ROSETTA-DIFF-001..003 through the registered MODEL-stage check, on the
committed fixtures (every GGUF of each) and on every mutant that declares a
tensor-diff gate. No runtime is loaded: the check reads files only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from differential_helpers import by_gate, gguf_of, model_stage

from apr_qa.checks import Stage, registered
from apr_qa.checks.tensor_diff import GATES, TensorDiff
from apr_qa.fixtures import fixture_names, fixture_path
from apr_qa.testing.mutants import MUTANTS, applies, build_mutant

CLEAN = [
    (fixture, gguf.name.removeprefix(f"{fixture}-").removesuffix(".gguf"))
    for fixture in fixture_names()
    for gguf in sorted(fixture_path(fixture).glob("*.gguf"))
]
MUTANT_CASES = [
    (fixture, name)
    for fixture in fixture_names()
    for name, mutant in MUTANTS.items()
    if set(mutant.gates) & set(GATES) and applies(name, fixture_path(fixture))
]


def test_registered_at_the_model_stage() -> None:
    assert any(isinstance(c, TensorDiff) for c in registered(Stage.MODEL))


def test_every_gate_has_a_mutant() -> None:
    declared = {g for _, name in MUTANT_CASES for g in MUTANTS[name].gates if g in GATES}
    assert declared == set(GATES)
    assert {f for f, _ in MUTANT_CASES} == set(fixture_names())


@pytest.mark.parametrize(("fixture", "quant"), CLEAN, ids=[f"{f}:{q}" for f, q in CLEAN])
def test_clean_gguf_corroborates(tmp_path: Path, fixture: str, quant: str) -> None:
    playbook, artifacts = model_stage(
        tmp_path, fixture_path(fixture), [(gguf_of(fixture, quant), quant)]
    )
    found = by_gate(TensorDiff().check(playbook, artifacts))
    assert list(found) == list(GATES)
    for finding in found.values():
        assert finding.passed is True, (finding.gate, finding.reason)
    assert found[GATES[2]].metrics["tensors"] >= 14  # every tensor of the checkpoint


def test_the_quantized_fixtures_are_compared_with_their_own_tolerances() -> None:
    assert {q for _, q in CLEAN} >= {"f32", "f16", "q8_0", "q4_0", "q4_k_m"}


@pytest.mark.parametrize(
    ("fixture", "name"), MUTANT_CASES, ids=[f"{f}:{m}" for f, m in MUTANT_CASES]
)
def test_mutant_falsifies_each_tensor_diff_gate_it_declares(
    tmp_path: Path, fixture: str, name: str
) -> None:
    artifact = build_mutant(name, fixture_path(fixture), tmp_path / "mutants")
    playbook, artifacts = model_stage(tmp_path, fixture_path(fixture), [(artifact, "auto")])
    found = by_gate(TensorDiff().check(playbook, artifacts))
    for gate in set(MUTANTS[name].gates) & set(GATES):
        assert found[gate].passed is False, (gate, found[gate].reason)


def test_rotary_layout_is_named(tmp_path: Path) -> None:
    fixture = next(
        f for f in fixture_names() if applies("gguf-qk-permutation-missing", fixture_path(f))
    )
    artifact = build_mutant("gguf-qk-permutation-missing", fixture_path(fixture), tmp_path)
    playbook, artifacts = model_stage(tmp_path, fixture_path(fixture), [(artifact, "f32")])
    found = by_gate(TensorDiff().check(playbook, artifacts))
    assert "left in Hugging Face's rotary order" in found[GATES[0]].reason
    # The values are compared in the layout found, so the one defect is reported once.
    assert found[GATES[2]].passed is True


def test_nothing_to_compare_is_skipped(tmp_path: Path) -> None:
    fixture = fixture_names()[0]
    playbook, artifacts = model_stage(tmp_path, fixture_path(fixture), [])
    for finding in TensorDiff().check(playbook, artifacts):
        assert finding.passed is None and "no safetensors and GGUF pair" in finding.reason
    gguf = [(gguf_of(fixture, "f32"), "f32")]
    playbook, artifacts = model_stage(
        tmp_path, fixture_path(fixture), gguf, {"tensor_diff": {"filter": "no_such_tensor"}}
    )
    for finding in TensorDiff().check(playbook, artifacts):
        assert finding.passed is None, finding.reason


def test_filter_gates_tolerance_and_switch_act(tmp_path: Path) -> None:
    fixture = next(
        f for f in fixture_names() if applies("gguf-qk-permutation-missing", fixture_path(f))
    )
    root = fixture_path(fixture)
    broken = [(build_mutant("gguf-qk-permutation-missing", root, tmp_path / "m"), "f32")]
    # Only the embedding and the output compared: the q/k defect is out of view.
    playbook, artifacts = model_stage(
        tmp_path, root, broken, {"tensor_diff": {"filter": "embed,lm_head"}}
    )
    found = by_gate(TensorDiff().check(playbook, artifacts))
    assert found[GATES[0]].passed is True and found[GATES[2]].metrics["tensors"] <= 2
    playbook, artifacts = model_stage(tmp_path, root, broken, {"tensor_diff": {"filter": "attn_q"}})
    assert by_gate(TensorDiff().check(playbook, artifacts))[GATES[0]].passed is False
    # The playbook's gates list is the gates recorded.
    playbook, artifacts = model_stage(
        tmp_path, root, broken, {"tensor_diff": {"gates": [GATES[1]]}}
    )
    assert list(by_gate(TensorDiff().check(playbook, artifacts))) == [GATES[1]]
    playbook, artifacts = model_stage(tmp_path, root, broken, {"tensor_diff": {"enabled": False}})
    assert list(TensorDiff().check(playbook, artifacts)) == []
    # A tighter ceiling for q4_0 than its quantization allows falsifies the clean file.
    clean = [(gguf_of(fixture, "q4_0"), "q4_0")]
    playbook, artifacts = model_stage(
        tmp_path, root, clean, {"tensor_diff": {"tolerance": {"q4_0": 0.01}}}
    )
    assert by_gate(TensorDiff().check(playbook, artifacts))[GATES[2]].passed is False


def test_compare_with_supplies_the_other_side(tmp_path: Path) -> None:
    fixture = fixture_names()[0]
    artifact = build_mutant("gguf-embedding-transposed", fixture_path(fixture), tmp_path / "m")
    # The model under test is the GGUF alone; its checkpoint comes from compare_with.
    playbook, artifacts = model_stage(
        tmp_path, None, [(artifact, "auto")], {"compare_with": [str(fixture_path(fixture))]}
    )
    found = by_gate(TensorDiff().check(playbook, artifacts))
    assert found[GATES[0]].passed is False and "transposed" in found[GATES[0]].reason


def test_square_matrix_stored_transposed_is_a_layout_defect(tmp_path: Path) -> None:
    """A transposed square matrix keeps its shape: only the values show the layout."""
    from apr_qa.models.architectures import ATTN_OUT
    from apr_qa.testing.mutants_io import rewrite_gguf

    fixture = fixture_names()[0]
    target = ATTN_OUT.name("gguf", 0)

    def edit(name: str, data: Any, qtype: Any) -> Any:
        return data.T.copy() if name == target else data

    flipped = rewrite_gguf(gguf_of(fixture, "f32"), tmp_path / "o.gguf", edit=edit)
    playbook, artifacts = model_stage(tmp_path, fixture_path(fixture), [(flipped, "f32")])
    found = by_gate(TensorDiff().check(playbook, artifacts))
    assert found[GATES[0]].passed is False
    assert f"{target} is stored transposed" in found[GATES[0]].reason
