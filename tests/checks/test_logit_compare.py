"""F-ROSETTA-INF-001..003 through the registered MODEL-stage check: teacher-forced
logits from transformers and llama.cpp (the workers' Score message) on every
committed GGUF of every fixture, and on the mutants that declare these gates."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from differential_helpers import by_gate, gguf_of, model_stage

from apr_qa.checks import Stage, registered
from apr_qa.checks.logit_compare import GATES, LogitComparison, is_pad_flood, kl_stats
from apr_qa.fixtures import fixture_names, fixture_path, load_prompts
from apr_qa.testing.mutants import MUTANTS, applies, build_mutant

ARGMAX, DIVERGENCE, PAD_FLOOD = GATES
MUTANT_CASES = [
    (fixture, name)
    for fixture in fixture_names()
    for name, mutant in MUTANTS.items()
    if set(mutant.gates) & set(GATES) and applies(name, fixture_path(fixture))
]


def _prompts(fixture: str) -> list[str]:
    return [p.prompt for p in load_prompts(fixture) if p.prompt][:3]


def test_kl_stats_against_hand_computed_values() -> None:
    # Two positions over a 2-token vocabulary: p = (0.5, 0.5) then (0.9, 0.1).
    ref = np.log(np.array([[0.5, 0.5], [0.9, 0.1]], dtype=np.float32))
    # The other side swaps the second position's probabilities.
    other = np.log(np.array([[0.5, 0.5], [0.1, 0.9]], dtype=np.float32))
    stats = kl_stats([(ref, other, [0, 1])])
    second = 0.9 * math.log(0.9 / 0.1) + 0.1 * math.log(0.1 / 0.9)
    assert stats.positions == 2
    assert stats.kl_mean == pytest.approx(second / 2, rel=1e-5)
    assert stats.kl_max == pytest.approx(second, rel=1e-5)
    # Position 0 ties (argmax 0 on both), position 1 disagrees.
    assert stats.same_top1 == 0.5
    # Δp for the next id (1) at position 0: 0.5 - 0.5.
    assert stats.dp_max == pytest.approx(0.0, abs=1e-6)
    same = kl_stats([(ref, ref.copy(), [0, 1])])
    assert same.kl_max == pytest.approx(0.0, abs=1e-9) and same.same_top1 == 1.0


@pytest.mark.parametrize(
    ("gap", "agrees"), [(2e-5, True), (9e-4, True), (2e-3, False), (0.2, False)]
)
def test_a_near_tie_in_the_reference_is_no_top1_disagreement(gap: float, agrees: bool) -> None:
    # The reference's top two tokens are `gap` apart; the other side picks the second.
    high, low = 0.5 + gap / 2, 0.5 - gap / 2
    ref = np.log(np.array([[high, low]], dtype=np.float64)).astype(np.float32)
    other = np.log(np.array([[low, high]], dtype=np.float64)).astype(np.float32)
    assert kl_stats([(ref, other, [0])]).same_top1 == (1.0 if agrees else 0.0)


def test_pad_flood_rule() -> None:
    pad, eos = 1, 0
    assert is_pad_flood([1, 1, 1], pad, eos)
    assert is_pad_flood([1, 1, 0], pad, eos)  # the stop token ends it
    assert not is_pad_flood([0], pad, eos)  # stopped at once: nothing flooded
    assert not is_pad_flood([5, 1, 1], pad, eos)
    assert not is_pad_flood([0], 0, 0)  # PAD is EOS: it stops, it cannot flood
    assert not is_pad_flood([], pad, eos)


def test_registered_and_every_gate_has_a_mutant() -> None:
    assert any(isinstance(c, LogitComparison) for c in registered(Stage.MODEL))
    declared = {g for _, name in MUTANT_CASES for g in MUTANTS[name].gates if g in GATES}
    assert declared == set(GATES)


CLEAN = [
    (fixture, quant)
    for fixture in fixture_names()
    for quant in ("f32", "f16", "q8_0", "q4_0", "q4_k_m")
    if gguf_of(fixture, quant).is_file()
]


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "quant"), CLEAN, ids=[f"{f}:{q}" for f, q in CLEAN])
def test_clean_gguf_corroborates(tmp_path: Path, fixture: str, quant: str) -> None:
    playbook, artifacts = model_stage(
        tmp_path, fixture_path(fixture), [(gguf_of(fixture, quant), quant)], None, _prompts(fixture)
    )
    found = by_gate(LogitComparison().check(playbook, artifacts))
    assert list(found) == list(GATES)
    for finding in found.values():
        assert finding.passed is True, (finding.gate, finding.reason)
    assert found[DIVERGENCE].metrics["kl_mean"] >= 0.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fixture", "name"), MUTANT_CASES, ids=[f"{f}:{m}" for f, m in MUTANT_CASES]
)
def test_mutant_falsifies_each_logit_gate_it_declares(
    tmp_path: Path, fixture: str, name: str
) -> None:
    artifact = build_mutant(name, fixture_path(fixture), tmp_path / "mutants")
    playbook, artifacts = model_stage(
        tmp_path, fixture_path(fixture), [(artifact, "auto")], None, _prompts(fixture)
    )
    found = by_gate(LogitComparison().check(playbook, artifacts))
    for gate in set(MUTANTS[name].gates) & set(GATES):
        assert found[gate].passed is False, (gate, found[gate].reason)


SCALED = [
    (fixture, quant)
    for fixture in fixture_names()
    for quant in ("q4_0", "q4_k_m")
    if gguf_of(fixture, quant).is_file()
]


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "quant"), SCALED, ids=[f"{f}:{q}" for f, q in SCALED])
def test_corrupted_quant_scales_fail_the_4bit_thresholds(
    tmp_path: Path, fixture: str, quant: str
) -> None:
    """The clean 4-bit file passes (test_clean_gguf_corroborates); the same file with
    its block scales multiplied by e^±2 fails the same defaults."""
    from apr_qa.testing.mutants_weights import gguf_quant_scales

    broken = gguf_quant_scales(gguf_of(fixture, quant), tmp_path / f"scaled-{quant}.gguf")
    playbook, artifacts = model_stage(
        tmp_path, fixture_path(fixture), [(broken, quant)], None, _prompts(fixture)
    )
    found = by_gate(LogitComparison().check(playbook, artifacts))
    assert found[DIVERGENCE].passed is False, found[DIVERGENCE].reason
    assert found[ARGMAX].passed is False, found[ARGMAX].reason


@pytest.mark.slow
def test_playbook_ceiling_and_nothing_compared(tmp_path: Path) -> None:
    fixture = fixture_names()[0]
    root = fixture_path(fixture)
    q4 = [(gguf_of(fixture, "q4_0"), "q4_0")]
    # A ceiling tighter than 4-bit quantization can meet falsifies the clean file.
    playbook, artifacts = model_stage(
        tmp_path,
        root,
        q4,
        {"inference_compare": {"tolerance": {"q4_0": 1e-6}, "gates": [DIVERGENCE]}},
    )
    found = by_gate(LogitComparison().check(playbook, artifacts))
    assert list(found) == [DIVERGENCE] and found[DIVERGENCE].passed is False
    playbook, artifacts = model_stage(tmp_path, root, [])
    assert {f.passed for f in LogitComparison().check(playbook, artifacts)} == {None}


@pytest.mark.slow
def test_a_gguf_that_does_not_load_is_skipped_not_passed(tmp_path: Path) -> None:
    fixture = fixture_names()[0]
    broken = build_mutant("gguf-embedding-transposed", fixture_path(fixture), tmp_path / "m")
    playbook, artifacts = model_stage(tmp_path, fixture_path(fixture), [(broken, "f32")])
    found = by_gate(LogitComparison().check(playbook, artifacts))
    for finding in found.values():
        assert finding.passed is None and "does not load" in finding.reason, finding.reason
