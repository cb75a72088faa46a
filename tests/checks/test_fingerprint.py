"""F-ROSETTA-FP-001..003 and F-ROSETTA-STATS-001..006 on the committed fixtures and
their mutants: every clean artifact (checkpoint and every GGUF quantization) holds
against the checkpoint's reference, each mutant that declares one of these gates is
falsified by it, and the playbook's reference, tolerances and switches act.

Reading tensors only (no runtime): the whole module takes a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from apr_qa.checks import Artifact
from apr_qa.checks.fingerprint import FP_GATES, STATS_GATES, TensorFingerprint, judge
from apr_qa.cli import cli
from apr_qa.errors import UsageError
from apr_qa.evidence import Outcome
from apr_qa.execute.records import CellRef
from apr_qa.fixtures import fixture_names, fixture_path
from apr_qa.models.fingerprint import Fingerprint, fingerprint, read_fingerprint
from apr_qa.playbook import load_playbook
from apr_qa.testing.mutants import MUTANTS, applies, build_mutant

GATES = FP_GATES + STATS_GATES
REFERENCE_GATES = (
    "F-ROSETTA-FP-002",
    "F-ROSETTA-FP-003",
    "F-ROSETTA-STATS-001",
    "F-ROSETTA-STATS-002",
    "F-ROSETTA-STATS-003",
    "F-ROSETTA-STATS-004",
)
MUTANT_CASES = [
    (fixture, name)
    for fixture in fixture_names()
    for name, mutant in MUTANTS.items()
    if set(mutant.gates) & set(GATES) and applies(name, fixture_path(fixture))
]


@pytest.fixture(scope="module")
def references() -> dict[str, Fingerprint]:
    """Each fixture checkpoint's fingerprint, the reference every test compares with."""
    return {f: fingerprint(fixture_path(f)) for f in fixture_names()}


def _outcomes(fp: Fingerprint, ref: Fingerprint | None) -> dict[str, Outcome]:
    return {f.gate: f.outcome for f in judge(fp, ref)}


@pytest.mark.parametrize("fixture", fixture_names())
def test_every_clean_artifact_corroborates(
    references: dict[str, Fingerprint], fixture: str
) -> None:
    root = fixture_path(fixture)
    artifacts = [root, *sorted(root.glob("*.gguf"))]
    assert len(artifacts) >= 4  # the checkpoint, f32, q8_0 and a 4-bit GGUF at least
    for artifact in artifacts:
        fp = fingerprint(artifact)
        seen = {f.gate: f for f in judge(fp, references[fixture])}
        assert set(seen) == set(GATES)
        failed = {g: f.reason for g, f in seen.items() if f.outcome is not Outcome.CORROBORATED}
        if fp.format == "gguf":
            # Checksums are compared within one format: a GGUF's differ by construction.
            assert set(failed) == {"F-ROSETTA-FP-002"}, (artifact.name, failed)
            assert seen["F-ROSETTA-FP-002"].outcome is Outcome.SKIPPED
            assert "checksums differ by format" in failed["F-ROSETTA-FP-002"]
        else:
            assert failed == {}, artifact.name
        # The per-tensor view: the worst tensors of each role, within tolerance.
        view = seen["F-ROSETTA-STATS-003"].expected
        assert isinstance(view, dict) and view["worst_tensors"]
        assert all(row["value"] <= row["tolerance"] for row in view["worst_tensors"])


@pytest.mark.parametrize(
    ("fixture", "name"), MUTANT_CASES, ids=[f"{f}:{m}" for f, m in MUTANT_CASES]
)
def test_mutant_falsifies_each_fingerprint_gate_it_declares(
    references: dict[str, Fingerprint], tmp_path: Path, fixture: str, name: str
) -> None:
    artifact = build_mutant(name, fixture_path(fixture), tmp_path)
    outcomes = _outcomes(fingerprint(artifact), references[fixture])
    for gate in set(MUTANTS[name].gates) & set(GATES):
        assert outcomes[gate] is Outcome.FALSIFIED, (name, gate, outcomes)


def test_noise_drift_is_caught_only_by_its_statistics(
    references: dict[str, Fingerprint], tmp_path: Path
) -> None:
    """The fluent mutant passes every reference-free gate; its moved std does not."""
    artifact = build_mutant("noise-drift", fixture_path("tiny-llama"), tmp_path)
    findings = {f.gate: f for f in judge(fingerprint(artifact), references["tiny-llama"])}
    for gate in ("F-ROSETTA-FP-001", "F-ROSETTA-STATS-005", "F-ROSETTA-STATS-006"):
        assert findings[gate].outcome is Outcome.CORROBORATED
    ffn = findings["F-ROSETTA-STATS-004"]
    assert ffn.outcome is Outcome.FALSIFIED and "of its std (tolerance 0.01)" in ffn.reason
    assert isinstance(ffn.expected, dict)
    worst = ffn.expected["worst_tensors"]
    assert worst[0]["value"] > worst[0]["tolerance"] and worst[0]["role"] == "ffn"


def test_without_a_reference_the_reference_gates_say_so(
    references: dict[str, Fingerprint],
) -> None:
    findings = {f.gate: f for f in judge(references["tiny-qa"], None)}
    for gate in REFERENCE_GATES:
        assert findings[gate].outcome is Outcome.SKIPPED
        assert "names no fingerprint reference" in findings[gate].reason
    assert findings["F-ROSETTA-FP-001"].outcome is Outcome.CORROBORATED


def test_gemma_norms_are_fingerprinted_as_their_scale() -> None:
    """Gemma 2 stores ``scale - 1`` in safetensors and llama.cpp's GGUF the scale: a
    fingerprint holds the scale, so the two formats compare (and the zero rule judges
    the scale, not the stored ``w``)."""
    from apr_qa.models.readers import open_model

    root = Path(__file__).parents[1] / "fixtures" / "arch" / "gemma2"
    fp = fingerprint(root)
    norms = [t for t in fp.tensors if t.role == "norm"]
    assert norms and fp.architecture == "gemma2"
    with open_model(root) as reader:
        for t in norms:
            stored = reader.read_tensor(t.stored_name)
            assert t.mean == pytest.approx(float(stored.mean()) + 1.0, abs=1e-5)
            assert t.std == pytest.approx(float(stored.std()), rel=1e-4, abs=1e-7)
    llama = fingerprint(fixture_path("tiny-llama"))
    with open_model(fixture_path("tiny-llama")) as reader:
        t = next(t for t in llama.tensors if t.role == "norm")
        assert t.mean == pytest.approx(float(reader.read_tensor(t.stored_name).mean()), abs=1e-6)


# --- through the playbook: the artifact-stage check --------------------------------------


def _playbook(tmp_path: Path, differential: str) -> Path:
    path = tmp_path / "fp.yaml"
    path.write_text(
        "name: fp\nmodel: {id: org/fp}\n"
        "test_matrix: {modalities: [run], backends: [cpu], formats: [safetensors]}\n" + differential
    )
    return path


def _check(playbook: Path, artifact: Path) -> dict[str, Outcome]:
    book = load_playbook(playbook)
    assert book.warnings == ()
    found = TensorFingerprint().check(
        Artifact(book, CellRef("org/fp", "safetensors", None), artifact, "local")
    )
    return {f.gate: f.outcome for f in found}


@pytest.fixture(scope="module")
def drift(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tiny-qa's noise-drift mutant and a reference of the clean checkpoint, via the CLI."""
    folder = tmp_path_factory.mktemp("drift")
    reference = folder / "ref.json"
    result = CliRunner().invoke(
        cli, ["fingerprint", str(fixture_path("tiny-qa")), "-o", str(reference)]
    )
    assert result.exit_code == 0, result.output
    assert f"fingerprints to {reference}" in result.output
    return build_mutant("noise-drift", fixture_path("tiny-qa"), folder), reference


def test_playbook_reference_and_tolerance_act(drift: tuple[Path, Path], tmp_path: Path) -> None:
    mutant, reference = drift
    strict = _playbook(
        tmp_path, f"differential_tests:\n  validate_stats: {{reference: {reference}}}\n"
    )
    assert _check(strict, mutant)["F-ROSETTA-STATS-003"] is Outcome.FALSIFIED
    loose = _playbook(
        tmp_path,
        "differential_tests:\n"
        f"  validate_stats: {{reference: {reference}, tolerance: {{attention: 0.5, ffn: 0.5}}}}\n",
    )
    outcomes = _check(loose, mutant)
    assert outcomes["F-ROSETTA-STATS-003"] is Outcome.CORROBORATED
    assert outcomes["F-ROSETTA-STATS-004"] is Outcome.CORROBORATED
    assert outcomes["F-ROSETTA-STATS-002"] is Outcome.FALSIFIED  # the embedding's is unchanged


def test_playbook_gates_and_switches_act(drift: tuple[Path, Path], tmp_path: Path) -> None:
    mutant, reference = drift
    listed = _playbook(
        tmp_path,
        "differential_tests:\n  fingerprint: {gates: [F-ROSETTA-FP-001]}\n"
        f"  validate_stats: {{reference: {reference}, enabled: false}}\n",
    )
    assert _check(listed, mutant) == {"F-ROSETTA-FP-001": Outcome.CORROBORATED}
    off = _playbook(
        tmp_path,
        "differential_tests:\n  fingerprint: {enabled: false}\n  validate_stats: {enabled: false}\n",
    )
    assert _check(off, mutant) == {}


def test_unreadable_reference_skips_with_the_reason(
    drift: tuple[Path, Path], tmp_path: Path
) -> None:
    mutant, _ = drift
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"fingerprints": []}))
    book = _playbook(
        tmp_path,
        f"differential_tests:\n  fingerprint: {{}}\n  validate_stats: {{reference: {bad}}}\n",
    )
    outcomes = _check(book, mutant)
    assert {outcomes[g] for g in REFERENCE_GATES} == {Outcome.SKIPPED}
    with pytest.raises(UsageError, match="not an apr-qa fingerprint"):
        read_fingerprint(bad)


def test_reference_round_trips(references: dict[str, Fingerprint], tmp_path: Path) -> None:
    from apr_qa.models.fingerprint import write_fingerprint

    path = tmp_path / "ref.json"
    write_fingerprint(references["tiny-llama"], path)
    again = read_fingerprint(path)
    assert again.tensors == references["tiny-llama"].tensors
    assert json.loads(path.read_text())["schema_version"] == 1


def test_stats_skip_non_finite_values_and_count_them() -> None:
    import numpy as np

    from apr_qa.models.fingerprint import tensor_stats

    values = np.array([1.0, 3.0, np.nan, np.inf, 0.0], dtype=np.float32)
    stats = tensor_stats("t", "t", "f32", "ffn", values)
    assert (stats.nan_count, stats.inf_count) == (1, 1)
    assert stats.mean == pytest.approx(4.0 / 3.0) and stats.max == 3.0
    assert stats.zero_fraction == pytest.approx(0.2) and not stats.finite
    clean = tensor_stats("t", "t", "f32", "ffn", values[[0, 1, 4]])
    assert clean.finite and clean.checksum != stats.checksum


def test_without_either_entry_nothing_is_fingerprinted(
    drift: tuple[Path, Path], tmp_path: Path
) -> None:
    """Opt-in: a playbook naming neither entry gets no fingerprint record."""
    mutant, _ = drift
    book = _playbook(tmp_path, "differential_tests:\n  tensor_diff: {enabled: true}\n")
    assert _check(book, mutant) == {}
    only_stats = _playbook(tmp_path, "differential_tests:\n  validate_stats: {}\n")
    assert set(_check(only_stats, mutant)) == set(STATS_GATES)


def test_fingerprint_command_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        cli, ["fingerprint", str(tmp_path / "absent"), "-o", str(tmp_path / "o")]
    )
    assert missing.exit_code == 3
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"neither format")
    assert runner.invoke(cli, ["fingerprint", str(junk), "-o", str(tmp_path / "o")]).exit_code == 2
    assert not (tmp_path / "o").exists()
