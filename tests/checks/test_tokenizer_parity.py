"""F-TOK-PARITY-001..003 through the registered MODEL-stage check: transformers
and llama.cpp, each in its worker, on the committed fixtures and the tokenizer
mutants; special tokens and chat templates on GGUFs rewritten one key at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
from differential_helpers import by_gate, gguf_of, model_stage

from apr_qa.checks import Stage, registered
from apr_qa.checks.tokenizer_parity import GATES, PROBES, TokenizerParity
from apr_qa.fixtures import fixture_names, fixture_path, load_prompts
from apr_qa.testing.mutants import MUTANTS, applies, build_mutant
from apr_qa.testing.mutants_io import rewrite_gguf

pytestmark = pytest.mark.slow

IDS, SPECIAL, TEMPLATE = GATES
MUTANT_CASES = [
    (fixture, name)
    for fixture in fixture_names()
    for name, mutant in MUTANTS.items()
    if set(mutant.gates) & set(GATES) and applies(name, fixture_path(fixture))
]


def _prompts(fixture: str) -> list[str]:
    return [p.prompt for p in load_prompts(fixture) if p.prompt][:3]


def test_registered_and_every_fixture_has_a_mutant() -> None:
    assert any(isinstance(c, TokenizerParity) for c in registered(Stage.MODEL))
    assert {f for f, _ in MUTANT_CASES} == set(fixture_names())


@pytest.mark.parametrize("fixture", fixture_names())
def test_clean_fixture_corroborates(tmp_path: Path, fixture: str) -> None:
    ggufs = [(gguf_of(fixture, q), q) for q in ("f32", "q4_0")]
    playbook, artifacts = model_stage(
        tmp_path, fixture_path(fixture), ggufs, None, _prompts(fixture)
    )
    found = by_gate(TokenizerParity().check(playbook, artifacts))
    assert list(found) == list(GATES)
    for finding in found.values():
        assert finding.passed is True, (finding.gate, finding.reason)
    # Every probe and prompt, on both GGUFs, plus the reference's own answers.
    assert found[IDS].details["compared"] >= 2 * (len(PROBES) + 3)


@pytest.mark.parametrize(
    ("fixture", "name"), MUTANT_CASES, ids=[f"{f}:{m}" for f, m in MUTANT_CASES]
)
def test_mutant_falsifies_each_parity_gate_it_declares(
    tmp_path: Path, fixture: str, name: str
) -> None:
    root = fixture_path(fixture)
    artifact = build_mutant(name, root, tmp_path / "mutants")
    if MUTANTS[name].base_format == "gguf":
        reference, gguf = root, artifact
    else:
        reference, gguf = artifact, gguf_of(fixture, "f32")
    playbook, artifacts = model_stage(tmp_path, reference, [(gguf, "f32")], None, _prompts(fixture))
    found = by_gate(TokenizerParity().check(playbook, artifacts))
    for gate in set(MUTANTS[name].gates) & set(GATES):
        assert found[gate].passed is False, (gate, found[gate].reason)
    # The first differing text is named, with both id lists.
    reason = found[IDS].reason
    assert "tokenizes differently: checkpoint [" in reason and ", GGUF [" in reason


def test_special_token_moved_falsifies(tmp_path: Path) -> None:
    fixture = fixture_names()[0]
    moved = rewrite_gguf(
        gguf_of(fixture, "f32"),
        tmp_path / "pad.gguf",
        set_keys={"tokenizer.ggml.padding_token_id": 2},
    )
    playbook, artifacts = model_stage(
        tmp_path,
        fixture_path(fixture),
        [(moved, "f32")],
        {"tokenizer_parity": {"gates": [SPECIAL]}},
    )
    found = by_gate(TokenizerParity().check(playbook, artifacts))
    assert list(found) == [SPECIAL]
    assert found[SPECIAL].passed is False and "pad token differs" in found[SPECIAL].reason


def test_other_chat_template_falsifies(tmp_path: Path) -> None:
    fixture = fixture_names()[0]
    other = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    changed = rewrite_gguf(
        gguf_of(fixture, "f32"), tmp_path / "tpl.gguf", set_keys={"tokenizer.chat_template": other}
    )
    playbook, artifacts = model_stage(
        tmp_path,
        fixture_path(fixture),
        [(changed, "f32")],
        {"tokenizer_parity": {"gates": [TEMPLATE]}},
    )
    found = by_gate(TokenizerParity().check(playbook, artifacts))
    assert found[TEMPLATE].passed is False and "render differently" in found[TEMPLATE].reason
    dropped = rewrite_gguf(
        gguf_of(fixture, "f32"), tmp_path / "none.gguf", drop_keys=("tokenizer.chat_template",)
    )
    playbook, artifacts = model_stage(
        tmp_path,
        fixture_path(fixture),
        [(dropped, "f32")],
        {"tokenizer_parity": {"gates": [TEMPLATE]}},
    )
    found = by_gate(TokenizerParity().check(playbook, artifacts))
    assert found[TEMPLATE].passed is False and "only the checkpoint" in found[TEMPLATE].reason


def test_nothing_to_compare_is_skipped(tmp_path: Path) -> None:
    fixture = fixture_names()[0]
    playbook, artifacts = model_stage(tmp_path, fixture_path(fixture), [])
    found = by_gate(TokenizerParity().check(playbook, artifacts))
    assert {f.passed for f in found.values()} == {None}
    playbook, artifacts = model_stage(
        tmp_path,
        fixture_path(fixture),
        [(gguf_of(fixture, "f32"), "f32")],
        {"tokenizer_parity": {"enabled": False}},
    )
    assert list(TokenizerParity().check(playbook, artifacts)) == []
