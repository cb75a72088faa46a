"""``apr-qa diff A B``: exit 0 on each clean fixture's 4-bit pairs, 1 on the mutants the
differential gates catch, 2 on misuse, 3 when an artifact cannot be loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from apr_qa.cli import cli
from apr_qa.fixtures import fixture_names, fixture_path
from apr_qa.testing.mutants import MUTANTS, applies, build_mutant

# apr-qa diff compares tensors, tokenizers and logits; fingerprints and stats need a
# reference file.
DIFFERENTIAL = ("F-ROSETTA-DIFF-", "F-ROSETTA-INF-", "F-TOK-PARITY-")
# The command on each fixture's 4-bit GGUFs, the loosest thresholds and the largest
# differences (every other GGUF goes through the same checks in tests/checks:
# test_tensor_diff, test_tokenizer_parity, test_logit_compare, each on every GGUF).
CLEAN = [
    (fixture, gguf.name)
    for fixture in fixture_names()
    for gguf in sorted(fixture_path(fixture).glob("*.gguf"))
    if gguf.stem.endswith(("-q4_0", "-q4_k_m"))
]


def _caught() -> list[tuple[str, str]]:
    """Each differential mutant once, on fixtures taken in turn (the mutant walk runs
    every mutant on every fixture through the engine; this is the command's exit code)."""
    cases = []
    for i, (name, mutant) in enumerate(MUTANTS.items()):
        if not any(g.startswith(DIFFERENTIAL) for g in mutant.gates):
            continue
        fits = [f for f in fixture_names() if applies(name, fixture_path(f))]
        if fits:
            cases.append((fits[i % len(fits)], name))
    return cases


CAUGHT = _caught()


def _diff(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["diff", *args])
    return result.exit_code, result.output


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "gguf"), CLEAN, ids=[g for _, g in CLEAN])
def test_clean_pair_exits_0(fixture: str, gguf: str) -> None:
    root = fixture_path(fixture)
    code, out = _diff(str(root), str(root / gguf), "--json")
    report = json.loads(out)
    assert code == 0, [f for f in report["findings"] if f["outcome"] != "corroborated"]
    assert {f["outcome"] for f in report["findings"]} == {"corroborated"}
    assert report["tensors"] and report["logits"]["positions"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "name"), CAUGHT, ids=[f"{f}:{m}" for f, m in CAUGHT])
def test_mutant_exits_1_naming_its_gates(tmp_path: Path, fixture: str, name: str) -> None:
    root = fixture_path(fixture)
    artifact = build_mutant(name, root, tmp_path)
    if MUTANTS[name].base_format == "gguf":
        a, b = artifact, root  # either order
    else:
        a, b = artifact, root / f"{fixture}-f32.gguf"
    code, out = _diff(str(a), str(b))
    assert code == 1, out
    for gate in MUTANTS[name].gates:
        if gate.startswith(DIFFERENTIAL):
            assert any(line.split()[:2] == ["falsified", gate] for line in out.splitlines()), (
                gate,
                out,
            )


def test_two_ggufs_is_usage_and_a_missing_path_cannot_load(tmp_path: Path) -> None:
    root = fixture_path(fixture_names()[0])
    ggufs = sorted(root.glob("*.gguf"))[:2]
    assert _diff(str(ggufs[0]), str(ggufs[1]))[0] == 2
    assert _diff(str(root), str(tmp_path / "absent.gguf"))[0] == 3
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    assert _diff(str(root), str(junk))[0] == 3
