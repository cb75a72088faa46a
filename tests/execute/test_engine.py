"""The engine on the fake backend: verdicts, crashes, hangs, failure policies, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from own_workers import worker_processes

from apr_qa.evidence import HaltKind, Outcome, Record, read_evidence, record_schema
from apr_qa.execute import RunOptions, execute
from apr_qa.playbook import load_playbook

ANSWERS = {
    "What is 2 + 2?": "4",
    "What is 3 + 5?": "8",
    "Say hello.": "Hello there, friend.",
}


def _fake_model(tmp_path: Path, **behaviour: object) -> Path:
    path = tmp_path / "fake-model.json"
    path.write_text(json.dumps({"answers": ANSWERS, "default": "I am a fine model.", **behaviour}))
    return path


def _playbook(
    tmp_path: Path,
    model: Path,
    scenarios: str,
    *,
    policy: str = "collect-all",
    modalities: str = "[run, chat]",
    timeout_ms: int = 20000,
    count: int = 0,
) -> Path:
    path = tmp_path / "book.yaml"
    path.write_text(
        f"name: fake\nmodel: {{id: org/fake, path: {model}}}\n"
        f"test_matrix: {{modalities: {modalities}, backends: [cpu], formats: [gguf], quantizations: [q8_0],"
        f" timeout_ms: {timeout_ms}, scenario_count: {count}, max_tokens: 16}}\n"
        f"failure_policy: {policy}\n"
        f"scenarios:\n{scenarios}"
    )
    return path


GOOD = (
    "  - {name: add, prompt: 'What is 2 + 2?', oracle: arithmetic}\n"
    "  - {name: add2, prompt: 'What is 3 + 5?', oracle: arithmetic, expected: 8}\n"
    "  - {name: hello, prompt: 'Say hello.', oracle: contains, value: hello, case_sensitive: false}\n"
)


def _run(tmp_path: Path, book: Path, **options: object) -> list[Record]:
    out = tmp_path / "out"
    outcome = execute(
        [load_playbook(book)], RunOptions(output_dir=out, backend_override="fake", **options)
    )  # type: ignore[arg-type]
    read = read_evidence([out / "evidence.jsonl"])
    assert read.warnings == []
    assert [r.record_id for r in read.records] == [r.record_id for r in outcome.records]
    return read.records


def _by(records: list[Record], gate: str) -> list[Record]:
    return [r for r in records if r.gate == gate]


def _worker_processes() -> list[int]:
    """This test's live workers only: other runs share the machine (see own_workers.py)."""
    return worker_processes()


def test_clean_model_corroborates_every_scenario_and_gateway(tmp_path: Path) -> None:
    records = _run(tmp_path, _playbook(tmp_path, _fake_model(tmp_path), GOOD))
    validator = Draft202012Validator(record_schema())
    for record in records:
        validator.validate(record.to_json())
    scenario_records = [r for r in records if r.gate in ("F-A1-001", "F-A2-001")]
    assert len(scenario_records) == 6
    assert {r.outcome for r in scenario_records} == {Outcome.CORROBORATED}
    for gate in ("G1-LOAD-001", "G2-INFER-001", "G3-CRASH-001", "G3-HANG-001"):
        assert [r.outcome for r in _by(records, gate)] == [Outcome.CORROBORATED] * 2, gate
    (g4,) = _by(records, "G4-GARBAGE-001")
    assert g4.outcome is Outcome.CORROBORATED
    assert g4.metrics["outputs"] == 6
    # every scenario record points at its playbook line
    lines = sorted({r.scenario.line for r in scenario_records if r.scenario})
    assert lines == [6, 7, 8]  # name, model, test_matrix, failure_policy, scenarios: come first
    assert _worker_processes() == []


def test_wrong_answer_is_falsified_with_output_and_expected(tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    model.write_text(
        json.dumps({"answers": {**ANSWERS, "What is 3 + 5?": "14"}, "default": "x y z"})
    )
    records = _run(tmp_path, _playbook(tmp_path, model, GOOD, modalities="[run]"))
    (bad,) = [r for r in records if r.outcome is Outcome.FALSIFIED]
    assert bad.scenario is not None and bad.scenario.name == "add2"
    assert bad.output == "14" and bad.expected == 8


def test_segfaulting_worker_is_crashed_and_other_cells_complete(tmp_path: Path) -> None:
    scenarios = GOOD + "  - {name: boom, prompt: 'CRASH now', oracle: garbage}\n"
    model = _fake_model(tmp_path, crash_on="CRASH")
    records = _run(tmp_path, _playbook(tmp_path, model, scenarios))
    crashed = [r for r in records if r.outcome is Outcome.CRASHED]
    assert len(crashed) == 2  # one per cell (run, chat)
    assert all("SIGSEGV" in r.reason for r in crashed)
    assert [r.outcome for r in _by(records, "G3-CRASH-001")] == [Outcome.FALSIFIED] * 2
    corroborated = [
        r
        for r in records
        if r.gate in ("F-A1-001", "F-A2-001") and r.outcome is Outcome.CORROBORATED
    ]
    assert len(corroborated) == 6
    assert _worker_processes() == []


def test_hanging_worker_times_out_within_deadline_and_restarts(tmp_path: Path) -> None:
    scenarios = (
        "  - {name: hang, prompt: 'HANG forever', oracle: garbage}\n"
        "  - {name: after, prompt: 'What is 2 + 2?', oracle: arithmetic}\n"
    )
    model = _fake_model(tmp_path, hang_on="HANG")
    records = _run(
        tmp_path, _playbook(tmp_path, model, scenarios, modalities="[run]", timeout_ms=1500)
    )
    (timeout,) = [r for r in records if r.outcome is Outcome.TIMEOUT and r.gate == "F-A1-001"]
    assert timeout.scenario is not None and timeout.scenario.name == "hang"
    # The playbook's deadline was the one applied, and it was waited out; how much
    # later the kill landed depends on the machine's load, so it is not bounded here.
    assert timeout.metrics["timeout_s"] == 1.5 <= timeout.metrics["waited_s"]
    (after,) = [
        r for r in records if r.scenario and r.scenario.name == "after" and r.gate == "F-A1-001"
    ]
    assert (
        after.outcome is Outcome.CORROBORATED
    )  # the worker was restarted for the rest of the cell
    assert [r.outcome for r in _by(records, "G3-HANG-001")] == [Outcome.FALSIFIED]
    assert _worker_processes() == []


def test_load_failure_stops_the_line_under_stop_on_p0(tmp_path: Path) -> None:
    model = _fake_model(tmp_path, fail_load="corrupt tensor data")
    records = _run(tmp_path, _playbook(tmp_path, model, GOOD, policy="stop-on-p0"))
    g1 = _by(records, "G1-LOAD-001")
    assert g1[0].outcome is Outcome.FALSIFIED and "corrupt tensor data" in g1[0].reason
    halted = [
        r for r in records if r.outcome is Outcome.SKIPPED and r.halted is HaltKind.STOP_ON_P0
    ]
    assert len(halted) == 3  # the whole second cell
    assert "G1-LOAD-001" in halted[0].reason


def test_collect_all_runs_every_cell_after_a_gateway_failure(tmp_path: Path) -> None:
    model = _fake_model(tmp_path, fail_load="corrupt tensor data")
    records = _run(tmp_path, _playbook(tmp_path, model, GOOD, policy="collect-all"))
    assert [r.outcome for r in _by(records, "G1-LOAD-001")] == [Outcome.FALSIFIED] * 2
    assert not any(r.halted for r in records)


def test_fail_fast_stops_at_the_first_failure(tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"answers": {**ANSWERS, "What is 2 + 2?": "5"}}))
    records = _run(tmp_path, _playbook(tmp_path, model, GOOD, policy="fail-fast"))
    halted = [r for r in records if r.halted is HaltKind.FAIL_FAST]
    assert len(halted) == 2 + 3  # the rest of the first cell and all of the second
    assert sum(r.outcome is Outcome.FALSIFIED for r in records) == 1


def test_same_playbook_and_seed_give_identical_verdicts(tmp_path: Path) -> None:
    book = _playbook(tmp_path, _fake_model(tmp_path), GOOD, count=8)

    def verdicts() -> Counter[tuple[str, str, str, str]]:
        records = _run(tmp_path, book)
        return Counter(
            (r.gate, r.cell, r.scenario.name if r.scenario else "-", str(r.outcome))
            for r in records
        )

    first, second = verdicts(), verdicts()
    assert first == second
    assert sum(first.values()) > 16


def test_sigint_stops_workers_and_keeps_evidence(tmp_path: Path) -> None:
    scenarios = GOOD + "  - {name: hang, prompt: 'HANG forever', oracle: garbage}\n"
    model = _fake_model(tmp_path, hang_on="HANG")
    book = _playbook(tmp_path, model, scenarios, modalities="[run]", timeout_ms=600000)
    out = tmp_path / "out"
    code = (
        "import sys; from pathlib import Path\n"
        "from apr_qa.execute import RunOptions, execute\n"
        "from apr_qa.playbook import load_playbook\n"
        f"o = execute([load_playbook(Path({str(book)!r}))], RunOptions(output_dir=Path({str(out)!r}), backend_override='fake'))\n"
        "sys.exit(130 if o.interrupted else 0)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    evidence = out / "evidence.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if evidence.exists() and evidence.read_text().count("\n") >= 5:
            break
        time.sleep(0.2)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    records = read_evidence([evidence]).records
    assert sum(r.outcome is Outcome.CORROBORATED for r in records) >= 3
    assert not any(r.outcome is Outcome.CRASHED for r in records)
    assert _worker_processes() == []


def test_gpu_cells_are_skipped_visibly_with_a_reason_and_serve_cells_run(tmp_path: Path) -> None:
    book = tmp_path / "book.yaml"
    model = _fake_model(tmp_path)
    book.write_text(
        f"name: fake\nmodel: {{id: org/fake, path: {model}}}\n"
        "test_matrix: {modalities: [run, serve], backends: [cpu, gpu], formats: [gguf], quantizations: [q8_0]}\n"
        "failure_policy: collect-all\n"
        "scenarios:\n  - {name: add, prompt: 'What is 2 + 2?', oracle: arithmetic}\n"
    )
    records = _run(tmp_path, book)
    skipped = {
        (r.backend, r.modality): r.reason
        for r in records
        if r.outcome is Outcome.SKIPPED and r.gate.startswith("F-A")
    }
    assert set(skipped) == {("gpu", "run"), ("gpu", "serve")}
    assert "gpu requested but unusable" in skipped[("gpu", "run")]
    for gate in ("F-A1-001", "F-A3-001"):  # run in-process, serve over HTTP
        ran = [r for r in records if r.gate == gate and r.outcome is Outcome.CORROBORATED]
        assert len(ran) == 1, gate


def test_max_tokens_zero_and_backend_refusals_are_evidence(tmp_path: Path) -> None:
    scenarios = "  - {name: none, prompt: 'What is 2 + 2?', oracle: arithmetic, max_tokens: 0}\n"
    records = _run(
        tmp_path, _playbook(tmp_path, _fake_model(tmp_path), scenarios, modalities="[run]")
    )
    (record,) = [r for r in records if r.gate == "F-A1-001"]
    assert record.outcome is Outcome.FALSIFIED
    assert record.output == ""


def test_g4_falsifies_a_model_whose_outputs_are_garbage(tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    flood = "<|pad|>" * 12
    model.write_text(json.dumps({"answers": {"What is 2 + 2?": "4"}, "default": flood}))
    scenarios = "".join(
        f"  - {{name: s{i}, prompt: 'Tell me about topic {i}.'}}\n" for i in range(4)
    )
    records = _run(tmp_path, _playbook(tmp_path, model, scenarios, modalities="[run]"))
    (g4,) = _by(records, "G4-GARBAGE-001")
    assert g4.outcome is Outcome.FALSIFIED
    assert g4.metrics["garbage_rate"] == 1.0
    assert g4.category == "GATEWAY" and g4.severity == "P0"


def test_g4_threshold_comes_from_the_playbook(tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    answers = {f"Tell me about topic {i}.": "A fine and fluent answer about it." for i in range(3)}
    model.write_text(json.dumps({"answers": answers, "default": ""}))
    scenarios = "".join(
        f"  - {{name: s{i}, prompt: 'Tell me about topic {i}.'}}\n" for i in range(4)
    )
    book = _playbook(tmp_path, model, scenarios, modalities="[run]")
    book.write_text(book.read_text() + "gates: {g4_max_garbage_rate: 0.25}\n")
    (g4,) = _by(_run(tmp_path, book), "G4-GARBAGE-001")
    assert g4.outcome is Outcome.CORROBORATED  # 1 of 4 empty: exactly at the limit
    book.write_text(book.read_text().replace("0.25", "0.2"))
    (g4,) = _by(_run(tmp_path, book), "G4-GARBAGE-001")
    assert g4.outcome is Outcome.FALSIFIED


@pytest.mark.parametrize(
    ("playbook_opts_in", "caller_opts_in", "loads"),
    [(False, False, False), (True, False, False), (False, True, False), (True, True, True)],
)
def test_trust_remote_code_needs_both_playbook_and_caller(
    tmp_path: Path, playbook_opts_in: bool, caller_opts_in: bool, loads: bool
) -> None:
    model = _fake_model(tmp_path, requires_remote_code=True)
    book = _playbook(tmp_path, model, GOOD, modalities="[run]")
    book.write_text(
        book.read_text().replace(
            f"path: {model}}}",
            f"path: {model}, trust_remote_code: {str(playbook_opts_in).lower()}}}",
        )
    )
    records = _run(tmp_path, book, trust_remote_code=caller_opts_in)
    (g1,) = _by(records, "G1-LOAD-001")
    assert (g1.outcome is Outcome.CORROBORATED) is loads, g1.reason


def test_sharded_runs_merge_into_the_unsharded_verdict(tmp_path: Path) -> None:
    from apr_qa.plan import Shard
    from apr_qa.report import render_reports

    model = tmp_path / "m.json"
    model.write_text(json.dumps({"answers": {**ANSWERS, "What is 3 + 5?": "9"}}))
    book = _playbook(tmp_path, model, GOOD, modalities="[run, chat]")
    book.write_text(
        book.read_text().replace("quantizations: [q8_0]", "quantizations: [q8_0, q4_0]")
    )
    playbook = load_playbook(book)
    full = execute([playbook], RunOptions(output_dir=tmp_path / "full", backend_override="fake"))
    parts = [
        execute(
            [playbook],
            RunOptions(output_dir=tmp_path / f"s{k}", backend_override="fake", shard=Shard(k, 2)),
        )
        for k in (1, 2)
    ]
    assert all(p.records for p in parts)
    assert {r.shard for p in parts for r in p.records} == {"1/2", "2/2"}

    def summary(records: list[Record], out: str) -> dict[str, object]:
        model_summary = json.loads(
            render_reports(records, tmp_path / out).paths["summary"].read_text()
        )["models"][0]
        return {k: model_summary[k] for k in ("mqs", "grade", "status", "gateways", "categories")}

    merged = [r for p in parts for r in p.records]
    # Each shard records G4 on its own outputs; every other record adds up exactly.
    assert len([r for r in merged if r.gate != "G4-GARBAGE-001"]) == len(
        [r for r in full.records if r.gate != "G4-GARBAGE-001"]
    )
    whole, together = summary(full.records, "whole"), summary(merged, "merged")
    for key in ("mqs", "grade", "status", "categories"):
        assert together[key] == whole[key], key
    verdicts = [
        {g["gateway"]: g["verdict"] for g in s["gateways"]}  # type: ignore[attr-defined]
        for s in (whole, together)
    ]
    assert verdicts[0] == verdicts[1]


# -- G2 asks the cell's own prompts; checks that cannot be corroborated by silence ----------


def _gate_records(records: list[Record], gate: str) -> list[Record]:
    return [r for r in records if r.gate == gate]


def test_g2_probes_with_the_cells_own_scenarios_not_a_fixed_question(tmp_path: Path) -> None:
    # Trained on another prompt form: silent on the built-in probes, fluent on its own.
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"answers": {"Question: 3 * 4\nAnswer:": " 12"}, "default": ""}))
    scenarios = (
        '  - {name: mul, prompt: "Question: 3 * 4\\nAnswer:", oracle: arithmetic, expected: 12}\n'
    )
    records = _run(tmp_path, _playbook(tmp_path, model, scenarios, modalities="[run]"))
    (g2,) = _gate_records(records, "G2-INFER-001")
    assert g2.outcome is Outcome.CORROBORATED
    assert "the cell's first explicit scenarios" in g2.reason
    assert g2.scenario is not None and g2.scenario.prompt == "Question: 3 * 4\nAnswer:"


def test_g2_uses_the_playbooks_own_probe_when_given(tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"answers": {"### Q: hi\n### A:": " hello"}, "default": ""}))
    book = _playbook(tmp_path, model, GOOD, modalities="[run]")
    book.write_text(book.read_text() + 'gates: {g2_probe: ["### Q: hi\\n### A:"]}\n')
    (g2,) = _gate_records(_run(tmp_path, book), "G2-INFER-001")
    assert g2.outcome is Outcome.CORROBORATED and "gates.g2_probe" in g2.reason


def test_g2_is_falsified_listing_every_probe_tried_when_all_are_blank(tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"answers": {}, "default": "   "}))
    records = _run(tmp_path, _playbook(tmp_path, model, GOOD, modalities="[run]"))
    (g2,) = _gate_records(records, "G2-INFER-001")
    assert g2.outcome is Outcome.FALSIFIED
    assert g2.reason.startswith("no probe yielded text (3 from the cell's first explicit")
    for prompt in ("What is 2 + 2?", "What is 3 + 5?", "Say hello."):
        assert prompt in g2.reason


def test_g2_falls_back_to_the_builtin_probes_without_explicit_scenarios(tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"answers": {"The weather today is": " mild"}, "default": ""}))
    book = _playbook(tmp_path, model, "  []\n", modalities="[run]", count=2)
    (g2,) = _gate_records(_run(tmp_path, book), "G2-INFER-001")
    assert g2.outcome is Outcome.CORROBORATED and "built-in probes" in g2.reason
    assert "probe 2 of 3" in g2.reason  # the first built-in probe came back blank


def test_a_model_that_always_answers_nothing_corroborates_no_output_check(
    tmp_path: Path,
) -> None:
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"answers": {}, "default": ""}))
    book = _playbook(tmp_path, model, GOOD, count=40)
    records = _run(tmp_path, book)
    # Loading and not crashing are facts about the runtime; everything that judges
    # an output must not hold for silence.
    judged = [r for r in records if r.gate not in ("G1-LOAD-001", "G3-CRASH-001", "G3-HANG-001")]
    assert judged
    corroborated = [r for r in judged if r.outcome is Outcome.CORROBORATED]
    assert corroborated == [], [
        (r.gate, r.scenario and r.scenario.name, r.reason) for r in corroborated
    ]
    determinism = _gate_records(records, "F-STAB-DET-001")
    assert determinism and {r.outcome for r in determinism} == {Outcome.SKIPPED}


def test_determinism_falsified_by_nondeterministic_model(tmp_path: Path) -> None:
    model = _fake_model(tmp_path, nondeterministic=True, default="Steady.")
    records = _run(tmp_path, _playbook(tmp_path, model, GOOD, modalities="[run]", count=30))
    determinism = _gate_records(records, "F-STAB-DET-001")
    assert determinism
    assert {r.outcome for r in determinism} == {Outcome.FALSIFIED}
    assert "generations differ" in determinism[0].reason


def test_determinism_corroborated_by_a_deterministic_model(tmp_path: Path) -> None:
    model = _fake_model(tmp_path, default="Steady.")
    records = _run(tmp_path, _playbook(tmp_path, model, GOOD, modalities="[run]", count=30))
    determinism = _gate_records(records, "F-STAB-DET-001")
    assert determinism and {r.outcome for r in determinism} == {Outcome.CORROBORATED}


def test_every_record_has_a_stable_key_and_a_hash_of_its_output(tmp_path: Path) -> None:
    book = _playbook(tmp_path, _fake_model(tmp_path), GOOD, count=6)
    first = _run(tmp_path, book)
    second = _run(tmp_path, book)
    assert [r.key for r in first] != [] and len({r.key for r in first}) == len(first)
    assert sorted(r.key for r in first) == sorted(r.key for r in second)
    assert {r.run_id for r in first} != {r.run_id for r in second}
    for record in first:
        if record.output is not None:
            assert record.output_chars == len(record.output)
            assert record.output_sha256 is not None and len(record.output_sha256) == 64


# -- G0-FORMAT-GGUF-001: a GGUF the converter cannot produce -----------------------------


def _unconvertible(tmp_path: Path) -> Path:
    """A playbook asking for a GGUF of qwen3, a real checkpoint the reference
    converter does not support."""
    import shutil

    model = tmp_path / "qwen3"
    shutil.copytree(Path(__file__).parents[1] / "fixtures" / "arch" / "qwen3", model)
    book = tmp_path / "book.yaml"
    book.write_text(
        f"name: conv\nmodel: {{id: org/qwen3, path: {model}}}\n"
        "test_matrix: {modalities: [run], backends: [cpu], formats: [gguf], "
        "quantizations: [q8_0], max_tokens: 8}\n"
        "failure_policy: collect-all\n"
        "scenarios:\n  - {name: hi, prompt: 'Hello', oracle: garbage}\n"
    )
    return book


def test_g0_format_gguf_falsified_when_the_converter_cannot_convert(tmp_path: Path) -> None:
    # The GGUF the playbook asks for cannot be produced: a finding, not a crash.
    options = RunOptions(output_dir=tmp_path / "out")
    records = execute([load_playbook(_unconvertible(tmp_path))], options).records
    (conversion,) = _by(records, "G0-FORMAT-GGUF-001")
    assert conversion.outcome is Outcome.FALSIFIED
    assert "conversion failed" in conversion.reason
    assert (conversion.format, conversion.quantization, conversion.backend) == (
        "gguf",
        "q8_0",
        None,
    )
    # the cell was not run (and not blamed on G1): its scenario is skipped, pointing at G0
    (scenario,) = _by(records, "F-A1-001")
    assert scenario.outcome is Outcome.SKIPPED and "G0-FORMAT-GGUF-001" in scenario.reason
    assert _by(records, "G1-LOAD-001") == []


def test_no_convert_skips_a_missing_quantization_instead_of_failing_the_model(
    tmp_path: Path,
) -> None:
    options = RunOptions(output_dir=tmp_path / "out", convert_missing=False)
    records = execute([load_playbook(_unconvertible(tmp_path))], options).records
    failed = [r for r in records if r.outcome in (Outcome.FALSIFIED, Outcome.CRASHED)]
    assert failed == []
    (scenario,) = _by(records, "F-A1-001")
    assert scenario.outcome is Outcome.SKIPPED and "conversion disabled" in scenario.reason


def test_a_planned_gate_can_only_be_recorded_as_skipped() -> None:
    from apr_qa.execute.records import CellRef, RecordFactory

    factory = RecordFactory("r")
    skipped = factory.make("F-HTTP-013", Outcome.SKIPPED, "not built yet", CellRef("m"))
    assert skipped.outcome is Outcome.SKIPPED
    with pytest.raises(ValueError, match="planned"):
        factory.make("F-HTTP-013", Outcome.CORROBORATED, "not built yet", CellRef("m"))
