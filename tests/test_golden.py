"""Golden outputs on the tiny models: recorded from the clean safetensors checkpoint,
held by the clean GGUFs within their quantization's threshold, broken by the
noise-drift and layers-swapped mutants (first divergence shown), and a tampered
or foreign golden file refused before anything runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from apr_qa import api
from apr_qa.cli import cli
from apr_qa.errors import UsageError
from apr_qa.evidence import Outcome, Record
from apr_qa.fixtures import fixture_path
from apr_qa.golden import agreement, file_sha256, read_golden, top_logprobs
from apr_qa.testing.mutants import build_mutant
from regression_playbooks import fixture_scenarios

GATE = "F-REGR-GOLDEN-001"


def test_agreement_counts_positions_and_finds_the_first_divergence() -> None:
    same = agreement([1, 2, 3], [1, 2, 3])
    assert (same.rate, same.first_divergence) == (1.0, None)
    moved = agreement([1, 2, 3, 4], [1, 9, 3, 4])
    assert (moved.rate, moved.first_divergence) == (0.75, 1)
    shorter = agreement([1, 2, 3, 4], [1, 2])
    assert (shorter.rate, shorter.first_divergence) == (0.5, 2)


def test_top_logprobs_refuses_logits_that_do_not_reproduce_the_greedy_tokens() -> None:
    logits = np.full((4, 6), -5.0, dtype=np.float32)
    logits[1, 3] = logits[2, 4] = logits[3, 1] = 5.0  # prompt of 2: rows 1.. predict tokens
    steps = top_logprobs(logits, 2, [3, 4], k=2)
    assert steps is not None and [s[0][0] for s in steps] == [3, 4]
    expected = float(np.log(np.exp(5) / (np.exp(5) + 5 * np.exp(-5))))
    assert steps[0][0][1] == pytest.approx(expected, abs=1e-6)  # kept to 6 decimals
    assert top_logprobs(logits, 2, [3, 5], k=2) is None  # token 5 was never the best


def _golden_text(model: str = "apr-qa/pr", ids: tuple[int, ...] = (5, 6)) -> str:
    header = {"kind": "apr-qa-golden", "schema_version": 1, "model": model, "reference": "x"}
    entry = {
        "scenario": "s",
        "modality": "run",
        "prompt": "p",
        "messages": None,
        "max_tokens": 8,
        "text": "t",
        "token_ids": list(ids),
        "finish_reason": "stop",
    }
    return json.dumps(header) + "\n" + json.dumps(entry) + "\n"


def test_read_golden_refuses_a_changed_file_another_model_and_non_golden(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text(_golden_text())
    digest = file_sha256(path)
    assert read_golden(path, sha256=digest, models=("apr-qa/pr",)).entries[0].token_ids == (5, 6)
    with pytest.raises(UsageError, match="recorded from model"):
        read_golden(path, sha256=digest, models=("apr-qa/other",))
    path.write_text(_golden_text(ids=(5, 7)))
    with pytest.raises(UsageError, match="does not match"):
        read_golden(path, sha256=digest)
    path.write_text('{"kind": "something else"}\n')
    with pytest.raises(UsageError, match="not an apr-qa golden file"):
        read_golden(path, sha256=None)


def _book(tmp: Path, name: str, model: Path, fmt: str, golden: str = "") -> Path:
    folder = tmp / f"playbook-{name}"
    folder.mkdir()
    quants = ", quantizations: [f32, q8_0, q4_0]" if fmt == "gguf" else ""
    path = folder / "playbook.yaml"
    path.write_text(
        "name: pr\nmodel: {id: apr-qa/pr, path: " + str(model) + "}\n"
        f"test_matrix: {{modalities: [run, chat], backends: [cpu], formats: [{fmt}]{quants},"
        " max_tokens: 32, timeout_ms: 60000}\n"
        f"failure_policy: collect-all\nscenarios:\n{fixture_scenarios('tiny-llama')}{golden}"
    )
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The golden file recorded by ``apr-qa golden`` from the clean checkpoint, and the
    playbook line that names it."""
    tmp = tmp_path_factory.mktemp("golden")
    reference = _book(tmp, "ref", fixture_path("tiny-llama"), "safetensors")
    out = tmp / "golden.jsonl"
    result = CliRunner().invoke(cli, ["golden", str(reference), "-o", str(out)])
    assert result.exit_code == 0, result.output
    line = re.search(r"golden: \{path: .*, sha256: ([0-9a-f]{64})\}", result.output)
    assert line is not None and line.group(1) == file_sha256(out)
    return out, f"golden: {{path: {out}, sha256: {line.group(1)}}}\n"


def _golden_records(tmp: Path, name: str, model: Path, fmt: str, golden: str) -> list[Record]:
    result = api.run([_book(tmp, name, model, fmt, golden)], api.RunConfig(output_dir=tmp / name))
    return [r for r in result.outcome.records if r.gate == GATE]


def _regr(out: Path) -> dict[str, object]:
    """The REGR category as the run's summary.json shows it."""
    summary = json.loads((out / "summary.json").read_text())
    categories = summary["models"][0]["categories"]
    found: dict[str, object] = next(c for c in categories if c["category"] == "REGR")
    return found


@pytest.mark.slow
def test_golden_file_holds_every_explicit_scenario_in_each_modality(
    recorded: tuple[Path, str],
) -> None:
    golden = read_golden(recorded[0], sha256=None)
    assert golden.model == "apr-qa/pr" and golden.reference.startswith("safetensors-")
    assert {e.modality for e in golden.entries} == {"run", "chat"}
    assert len(golden.entries) == 12 and all(e.token_ids and e.text for e in golden.entries)
    # Raw prompts carry the reference's top-k log-probabilities at each step, whose best
    # is the greedy token; chat prompts (templated on the runtime's side) carry none.
    for e in golden.entries:
        if e.modality == "chat":
            assert e.top_logprobs is None
            continue
        assert e.top_logprobs is not None and len(e.top_logprobs) == len(e.token_ids)
        for token, step in zip(e.token_ids, e.top_logprobs, strict=True):
            assert len(step) == 5 and step[0][0] == token
            assert all(p <= 0.0 for _, p in step) and step[0][1] >= step[-1][1]


@pytest.mark.slow
def test_clean_artifacts_corroborate_within_their_thresholds(
    recorded: tuple[Path, str], tmp_path: Path
) -> None:
    root = fixture_path("tiny-llama")
    records = _golden_records(tmp_path, "st", root, "safetensors", recorded[1])
    records += _golden_records(tmp_path, "gguf", root, "gguf", recorded[1])
    by_cell: dict[str, list[Record]] = {}
    for r in records:
        by_cell.setdefault(r.cell, []).append(r)
    assert sorted({(r.format, r.quantization) for r in records}) == [
        ("gguf", "f32"),
        ("gguf", "q4_0"),
        ("gguf", "q8_0"),
        ("safetensors", "f32"),
    ]
    for cell, mine in by_cell.items():
        assert len(mine) == 6, cell  # six scenarios per modality
        for r in mine:
            assert r.outcome is Outcome.CORROBORATED, (cell, r.reason)
            assert r.metrics["token_agreement"] >= r.metrics["agreement_threshold"]
    exact = [r for r in records if r.format == "safetensors"]
    assert all(r.metrics["agreement_threshold"] == 1.0 for r in exact)
    # A run with a golden file assesses REGR, and summary.json shows it.
    regr = _regr(tmp_path / "gguf")
    assert regr["assessed"] and regr["passed"] == regr["executed"] == 36


@pytest.mark.slow
@pytest.mark.parametrize("mutant", ["noise-drift", "layers-swapped"])
def test_mutants_are_falsified_with_the_first_divergence(
    mutant: str, recorded: tuple[Path, str], tmp_path: Path
) -> None:
    artifact = build_mutant(mutant, fixture_path("tiny-llama"), tmp_path / "mutants")
    records = _golden_records(tmp_path, mutant, artifact, "safetensors", recorded[1])
    falsified = [r for r in records if r.outcome is Outcome.FALSIFIED]
    assert falsified, [(r.scenario.name if r.scenario else "", r.reason) for r in records]
    for r in falsified:
        assert r.metrics["token_agreement"] < 1.0 and r.metrics["first_divergence"] >= 0
        assert f"first divergence at token {int(r.metrics['first_divergence'])}" in r.reason
    regr = _regr(tmp_path / mutant)
    assert regr["assessed"] and regr["passed"] == 12 - len(falsified)


@pytest.mark.slow
def test_an_entry_without_output_is_skipped_never_passed(
    recorded: tuple[Path, str], tmp_path: Path
) -> None:
    lines = recorded[0].read_text().splitlines()
    emptied = json.loads(lines[1])
    emptied["token_ids"], emptied["text"] = [], ""
    path = tmp_path / "golden-empty.jsonl"
    path.write_text("\n".join([lines[0], json.dumps(emptied), *lines[2:]]) + "\n")
    golden = f"golden: {{path: {path}, sha256: {file_sha256(path)}}}\n"
    records = _golden_records(tmp_path, "empty", fixture_path("tiny-llama"), "safetensors", golden)
    skipped = [r for r in records if r.outcome is Outcome.SKIPPED]
    assert [r.scenario.name for r in skipped if r.scenario] == [emptied["scenario"]]
    assert "no output" in skipped[0].reason


@pytest.mark.slow
def test_a_tampered_or_foreign_golden_file_is_refused(
    recorded: tuple[Path, str], tmp_path: Path
) -> None:
    tampered = tmp_path / "golden.jsonl"
    tampered.write_text(recorded[0].read_text().replace('"token_ids": [', '"token_ids": [1, ', 1))
    digest = file_sha256(recorded[0])
    book = _book(
        tmp_path,
        "tampered",
        fixture_path("tiny-llama"),
        "safetensors",
        f"golden: {{path: {tampered}, sha256: {digest}}}\n",
    )
    result = CliRunner().invoke(cli, ["run", str(book), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "does not match" in result.output
    assert not (tmp_path / "out" / "evidence.jsonl").exists()
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(recorded[0].read_text().replace('"apr-qa/pr"', '"apr-qa/other"', 1))
    golden = f"golden: {{path: {foreign}, sha256: {file_sha256(foreign)}}}\n"
    other = _book(tmp_path, "foreign", fixture_path("tiny-llama"), "safetensors", golden)
    with pytest.raises(UsageError, match="recorded from model 'apr-qa/other'"):
        api.run([other], api.RunConfig(output_dir=tmp_path / "out2"))
