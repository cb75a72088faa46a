"""Profile CI (F-PROFILE-CI-001..003): thresholds a cell meets corroborate, an
impossible one falsifies (the negative control) and fails CI; without a
threshold the gate is skipped but its figures are still recorded."""

from __future__ import annotations

import json
from pathlib import Path

from apr_qa.backends import Generation
from apr_qa.checks.profile import length_note, percentile
from apr_qa.evidence import Outcome, Record, read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.playbook import load_playbook
from apr_qa.score import score

GATES = ("F-PROFILE-CI-001", "F-PROFILE-CI-002", "F-PROFILE-CI-003")


def _run(tmp_path: Path, profile: str) -> list[Record]:
    script = tmp_path / "fake-model.json"
    script.write_text(json.dumps({"answers": {"What is 2 + 2?": "4"}, "default": "Fine."}))
    book = tmp_path / "book.yaml"
    book.write_text(
        f"name: fake\nmodel: {{id: org/fake, path: {script}}}\n"
        "test_matrix: {modalities: [run], backends: [cpu], formats: [gguf], quantizations: [q8_0],"
        " scenario_count: 0, max_tokens: 8}\n"
        f"profile_ci: {profile}\n"
        "scenarios:\n  - {name: add, prompt: 'What is 2 + 2?', oracle: arithmetic}\n"
    )
    out = tmp_path / "out"
    execute([load_playbook(book)], RunOptions(output_dir=out, backend_override="fake"))
    return read_evidence([out / "evidence.jsonl"]).records


def _profile(records: list[Record]) -> dict[str, Record]:
    return {r.gate: r for r in records if r.gate in GATES}


def test_nearest_rank_percentiles() -> None:
    runs = [0.05, 0.01, 0.04, 0.02, 0.03]
    assert percentile(runs, 50) == 0.03
    assert percentile(runs, 99) == 0.05  # with five runs, p99 is the slowest
    assert percentile(runs, 20) == 0.01


def test_thresholds_the_cell_meets_corroborate_and_record_figures(tmp_path: Path) -> None:
    records = _run(
        tmp_path,
        "{warmup: 1, measure: 3, assertions: {min_throughput_cpu: 0.001, max_p99_ms: 600000,"
        " max_p50_ms: 600000}}",
    )
    got = _profile(records)
    assert {g: r.outcome for g, r in got.items()} == dict.fromkeys(GATES, Outcome.CORROBORATED)
    figures = got["F-PROFILE-CI-001"].metrics
    # The fake answers "4" and would stop: each run is forced to max_tokens (8).
    assert figures["runs"] == 3 and figures["tokens"] == 3 * 8 == 3 * figures["tokens_asked"]
    assert "3 runs x 8 tokens, end of generation suppressed" in got["F-PROFILE-CI-001"].reason
    assert figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    model = score(records).models[0]
    perf = next(c for c in model.categories if c.category == "PERF")
    assert perf.assessed and perf.passed == 3
    assert model.passes("F")


def test_an_impossible_threshold_fails_every_gate_and_ci(tmp_path: Path) -> None:
    records = _run(
        tmp_path,
        "{measure: 2, assertions: {min_throughput: 1.0e12, max_p99_ms: 1.0e-9,"
        " max_p50_ms: 1.0e-9}}",
    )
    got = _profile(records)
    assert {g: r.outcome for g, r in got.items()} == dict.fromkeys(GATES, Outcome.FALSIFIED)
    assert "< floor" in got["F-PROFILE-CI-001"].reason
    assert not score(records).models[0].passes("F")


def test_no_threshold_is_skipped_with_its_figures(tmp_path: Path) -> None:
    got = _profile(_run(tmp_path, "{enabled: 'true', measure: 1}"))
    assert {g: r.outcome for g, r in got.items()} == dict.fromkeys(GATES, Outcome.SKIPPED)
    assert got["F-PROFILE-CI-001"].metrics["throughput_tok_s"] > 0


def test_a_cell_outside_the_selection_is_not_profiled(tmp_path: Path) -> None:
    got = _profile(_run(tmp_path, "{formats: [safetensors], assertions: {min_throughput: 1}}"))
    assert got == {}


def test_profile_tokens_sets_the_forced_length(tmp_path: Path) -> None:
    got = _profile(_run(tmp_path, "{measure: 2, tokens: 5}"))
    figures = got["F-PROFILE-CI-001"].metrics
    assert (figures["tokens"], figures["tokens_asked"]) == (2 * 5, 5)


def _gen(tokens: int, finish: str) -> Generation:
    return Generation("x", (1,) * tokens, 3, 0.01, 0.02, 50.0, finish)


def test_a_shorter_run_says_what_length_the_figures_cover_and_why() -> None:
    full = length_note([_gen(8, "length")] * 2, 8, command_line=False)
    assert full == "2 runs x 8 tokens, end of generation suppressed"
    stopped = length_note([_gen(2, "stop"), _gen(4, "stop")], 8, command_line=False)
    assert "cover 2 to 4 tokens per run, not the 8 asked" in stopped
    assert "end of generation despite min_tokens" in stopped
    bounded = length_note([_gen(6, "length")], 8, command_line=False)
    assert "cover 6 tokens" in bounded and "context window" in bounded
    words = length_note([_gen(1, "stop")], 8, command_line=True)
    assert "command-line runtime cannot" in words
