"""G0 against the mutant table: every mutant whose declared gates include a
G0-INTEGRITY id is falsified by each G0 gate it declares, and the clean model it was
built from corroborates all five (or skips 005 for safetensors).

Walked twice: on a tiny llama checkpoint built here (always available, fast),
and on the committed fixture models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from integrity_builders import train_tokenizer, write_gguf, write_hf

from apr_qa.checks.integrity import GATES, check_integrity
from apr_qa.fixtures import FIXTURES_DIR
from apr_qa.testing.fixtures.specs import FIXTURE_SPECS
from apr_qa.testing.mutants import MUTANTS, applies, build_mutant

G0_MUTANTS = sorted(name for name, m in MUTANTS.items() if any(g in GATES for g in m.gates))


def test_the_table_declares_g0_mutants() -> None:
    # The walk below must not pass by walking nothing.
    assert len(G0_MUTANTS) >= 10
    declared = {g for name in G0_MUTANTS for g in MUTANTS[name].gates if g in GATES}
    assert declared == set(GATES)


def assert_clean(path: Path) -> None:
    for f in check_integrity(path):
        skip_ok = f.gate == "G0-INTEGRITY-005" and path.is_dir()
        assert f.passed is (None if skip_ok else True), (path.name, f.gate, f.reason)


def assert_falsified(name: str, fixture: Path, out: Path) -> None:
    artifact = build_mutant(name, fixture, out)
    by_gate = {f.gate: f for f in check_integrity(artifact)}
    for gate in MUTANTS[name].gates:
        if gate in by_gate:
            assert by_gate[gate].passed is False, (name, gate, by_gate[gate].reason)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixture-shaped dir: HF checkpoint plus ``<name>-f32.gguf`` beside it."""
    tok = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(tok)
    root = tmp_path_factory.mktemp("built") / "tiny-built"
    write_hf(root, tok)
    write_gguf(root / "tiny-built-f32.gguf", root)
    return root


def test_built_model_is_clean(built: Path) -> None:
    assert_clean(built)
    assert_clean(built / "tiny-built-f32.gguf")


@pytest.mark.parametrize("name", G0_MUTANTS)
def test_built_mutant_is_falsified(built: Path, tmp_path: Path, name: str) -> None:
    # An untied 2-layer llama: every mutant applies (build_mutant raises otherwise).
    assert_falsified(name, built, tmp_path)


# --- the committed fixtures -----------------------------------------------------------


def fixture_artifacts() -> list[Path]:
    paths = []
    for name in sorted(FIXTURE_SPECS):
        directory = FIXTURES_DIR / name
        paths.append(directory)
        paths.extend(sorted(directory.glob("*.gguf")))
    return paths


def test_every_fixture_and_its_ggufs_are_committed() -> None:
    for name, spec in FIXTURE_SPECS.items():
        directory = FIXTURES_DIR / name
        assert (directory / "config.json").is_file(), directory
        quants = {p.stem.rsplit("-", 1)[-1] for p in directory.glob("*.gguf")}
        assert quants == set(spec.quants), (name, quants)


@pytest.mark.parametrize("artifact", fixture_artifacts(), ids=lambda p: p.name)
def test_fixture_artifact_is_clean(artifact: Path) -> None:
    assert_clean(artifact)


def fixture_mutants() -> list[tuple[str, str]]:
    """(fixture, mutant) pairs; a mutant that cannot be written into a fixture (an
    lm_head defect in a tied model) is left out. A missing fixture keeps all its
    pairs, so that its absence fails loudly instead of shrinking the walk."""
    return [
        (fixture, name)
        for fixture in sorted(FIXTURE_SPECS)
        for name in G0_MUTANTS
        if not (FIXTURES_DIR / fixture / "config.json").is_file()
        or applies(name, FIXTURES_DIR / fixture)
    ]


@pytest.mark.parametrize(("fixture", "name"), fixture_mutants())
def test_fixture_mutant_is_falsified(tmp_path: Path, fixture: str, name: str) -> None:
    assert_falsified(name, FIXTURES_DIR / fixture, tmp_path)
