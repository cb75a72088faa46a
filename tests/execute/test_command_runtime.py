"""Cells run through a command-line runtime (``runtimes:``), with a small script
standing in for ``apr run``: its answers are judged by the same oracles, and a
crash, a hang and garbage are falsified on exactly the gates they break."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from own_workers import worker_processes

from apr_qa.errors import PlaybookError
from apr_qa.evidence import Outcome, Record, read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.playbook import load_playbook

SCRIPT = Path(__file__).with_name("cli_runtime.py")
SCENARIOS = (
    "  - {name: add, prompt: 'What is 2 + 3?', oracle: arithmetic}\n"
    "  - {name: add2, prompt: 'What is 40 + 2?', oracle: arithmetic}\n"
)
_FAILED = {Outcome.FALSIFIED, Outcome.CRASHED, Outcome.TIMEOUT}


def _runtime(mode: str, timeout_s: float = 60, fmt: str = "apr", chat: bool = False) -> str:
    base = [sys.executable, str(SCRIPT), "--mode", mode, "--model", "{model}"]
    command = [*base, "--prompt-file", "{prompt_file}", "--max-tokens", "{max_tokens}"]
    lines = f"runtimes:\n  {fmt}:\n    command: {json.dumps(command)}\n"
    if chat:
        chat_command = [
            *base,
            "--prompt-file",
            "{prompt_file}",
            "--messages-file",
            "{messages_file}",
        ]
        lines += f"    chat_command: {json.dumps(chat_command)}\n"
    return lines + f"    output: {{regex: 'ANSWER: (?P<answer>.*)'}}\n    timeout_s: {timeout_s}\n"


def _book(tmp_path: Path, runtime: str, fmt: str = "apr", modalities: str = "run") -> Path:
    model = tmp_path / "tiny.apr"
    model.write_bytes(b"APRN\0fake weights")
    book = tmp_path / "book.yaml"
    book.write_text(
        f"name: cli\nmodel: {{id: org/cli, path: {model}}}\n"
        f"test_matrix: {{modalities: [{modalities}], backends: [cpu], formats: [{fmt}],"
        " timeout_ms: 60000, scenario_count: 0, max_tokens: 8}\n"
        f"failure_policy: collect-all\n{runtime}scenarios:\n{SCENARIOS}"
    )
    return book


def _run(tmp_path: Path, book: Path, backend: str | None = None) -> list[Record]:
    out = tmp_path / "out"
    execute([load_playbook(book)], RunOptions(output_dir=out, backend_override=backend))
    return read_evidence([out / "evidence.jsonl"]).records


def _failing(records: list[Record]) -> set[str]:
    return {r.gate for r in records if r.outcome in _FAILED}


def _scenarios(records: list[Record]) -> dict[str, Outcome]:
    return {r.scenario.name: r.outcome for r in records if r.scenario and r.gate.startswith("F-A")}


def test_a_runtime_that_answers_right_corroborates_every_gate(tmp_path: Path) -> None:
    book = _book(tmp_path, _runtime("ok", chat=True), modalities="run, chat")
    records = _run(tmp_path, book)
    assert _failing(records) == set(), [r.reason for r in records if r.outcome in _FAILED]
    by_cell = {(r.cell, r.gate, r.scenario.name if r.scenario else "") for r in records}
    for modality, gate in (("run", "F-A1-001"), ("chat", "F-A2-001")):
        for name in ("add", "add2"):
            assert any(c.endswith(modality) and g == gate and n == name for c, g, n in by_cell)
    outputs = {r.output for r in records if r.scenario and r.scenario.name == "add2"}
    assert outputs == {"42"}  # what the script printed after ANSWER:, in both modalities
    for gate in ("G1-LOAD-001", "G2-INFER-001", "G3-CRASH-001", "G3-HANG-001"):
        assert {r.outcome for r in records if r.gate == gate} == {Outcome.CORROBORATED}, gate


def test_a_runtime_profile_says_a_command_line_cannot_force_the_length(tmp_path: Path) -> None:
    book = _book(tmp_path, _runtime("ok"))
    book.write_text(book.read_text() + "profile_ci: {warmup: 0, measure: 2}\n")
    records = {r.gate: r for r in _run(tmp_path, book)}
    profile = records["F-PROFILE-CI-001"]
    assert profile.outcome is Outcome.SKIPPED  # no floor: the figures alone
    assert profile.metrics["tokens"] < 2 * 8 == 2 * profile.metrics["tokens_asked"]
    assert "command-line runtime cannot" in profile.reason, profile.reason


def test_a_runtime_that_crashes_fails_g3_crash_with_its_stderr(tmp_path: Path) -> None:
    records = _run(tmp_path, _book(tmp_path, _runtime("crash")))
    assert _failing(records) == {"G2-INFER-001", "G3-CRASH-001", "F-A1-001"}
    assert set(_scenarios(records).values()) == {Outcome.CRASHED}
    crashed = [r for r in records if r.gate == "F-A1-001"]
    assert all("SIGSEGV" in r.reason and "apr_matmul" in r.reason for r in crashed)
    assert {r.outcome for r in records if r.gate == "G3-HANG-001"} == {Outcome.CORROBORATED}


def test_a_runtime_that_hangs_is_killed_at_the_deadline_with_its_children(
    tmp_path: Path,
) -> None:
    records = _run(tmp_path, _book(tmp_path, _runtime("hang", timeout_s=1.0)))
    assert _failing(records) == {"G2-INFER-001", "G3-HANG-001", "F-A1-001"}
    assert set(_scenarios(records).values()) == {Outcome.TIMEOUT}
    assert {r.outcome for r in records if r.gate == "G3-CRASH-001"} == {Outcome.CORROBORATED}
    # The runtime and the child it started are gone, not orphaned.
    assert worker_processes() == []


def test_a_runtime_that_prints_garbage_fails_the_oracles_and_g4(tmp_path: Path) -> None:
    records = _run(tmp_path, _book(tmp_path, _runtime("garbage")))
    assert _failing(records) == {"F-A1-001", "G4-GARBAGE-001"}
    assert set(_scenarios(records).values()) == {Outcome.FALSIFIED}


def test_output_with_no_answer_where_the_playbook_says_is_falsified(tmp_path: Path) -> None:
    runtime = _runtime("ok").replace("ANSWER: (?P<answer>.*)", "RESULT=(.*)")
    records = _run(tmp_path, _book(tmp_path, runtime))
    scenario = [r for r in records if r.gate == "F-A1-001"]
    assert {r.outcome for r in scenario} == {Outcome.FALSIFIED}
    assert all("no match for 'RESULT=(.*)'" in r.reason for r in scenario)


def test_a_missing_apr_file_fails_g1(tmp_path: Path) -> None:
    book = _book(tmp_path, _runtime("ok"))
    (tmp_path / "tiny.apr").unlink()
    records = _run(tmp_path, book)
    load = [r for r in records if r.gate == "G1-LOAD-001"]
    assert [r.outcome for r in load] == [Outcome.FALSIFIED]
    assert "no apr artifact" in load[0].reason


def test_an_apr_cell_without_a_runtime_is_skipped_and_says_why(tmp_path: Path) -> None:
    records = [r for r in _run(tmp_path, _book(tmp_path, "")) if "apr" in r.cell]
    assert {r.outcome for r in records} == {Outcome.SKIPPED}
    assert len(records) == 2 and {r.reason for r in records} == {
        "skipped: format apr runs only through a command runtime, and runtimes.apr is not set"
    }


def test_a_chat_cell_without_a_chat_command_is_skipped(tmp_path: Path) -> None:
    records = _run(tmp_path, _book(tmp_path, _runtime("ok"), modalities="run, chat"))
    chat = [r for r in records if r.cell.endswith("chat")]
    assert chat and {r.outcome for r in chat} == {Outcome.SKIPPED}
    assert "no chat_command" in chat[0].reason
    run = [r for r in records if r.cell.endswith("run") and r.gate == "F-A1-001"]
    assert {r.outcome for r in run} == {Outcome.CORROBORATED}


def test_a_runtime_program_that_is_not_installed_skips_the_cell(tmp_path: Path) -> None:
    runtime = "runtimes:\n  apr: {command: [apr-not-installed-here, '{model}']}\n"
    records = [r for r in _run(tmp_path, _book(tmp_path, runtime)) if "apr" in r.cell]
    assert len(records) == 2 and {r.outcome for r in records} == {Outcome.SKIPPED}
    assert "'apr-not-installed-here' is not on PATH" in records[0].reason


def test_a_runtime_replaces_the_in_process_backend_of_its_format(tmp_path: Path) -> None:
    # A gguf cell with runtimes.gguf goes through the command line, not the backend:
    # the fake backend would answer from a script this model path is not.
    book = _book(tmp_path, _runtime("garbage", fmt="gguf"), fmt="gguf")
    records = _run(tmp_path, book, backend="fake")
    outputs = {r.output for r in records if r.gate == "F-A1-001"}
    assert outputs == {"token17 token17 <|im_end|> \ufffd\ufffd\ufffd"}


@pytest.mark.parametrize(
    ("runtime", "problem", "line"),
    [
        (
            "runtimes:\n  apr:\n    command: [apr, run, '{model}', '{prompt}']\n",
            "runtimes.apr.command[3]: unknown placeholder {prompt}",
            4,
        ),
        (
            "runtimes:\n  apr:\n    command: [apr, '{model}']\n    chat_command: [apr, '{x.y}']\n",
            "runtimes.apr.chat_command[1]: {x.y} is not a placeholder",
            5,
        ),
        (
            "runtimes:\n  apr:\n    command: [apr, '{model}']\n    output: {regex: '(('}\n",
            "runtimes.apr.output.regex:",
            5,
        ),
    ],
)
def test_a_bad_template_is_a_located_playbook_error(
    tmp_path: Path, runtime: str, problem: str, line: int
) -> None:
    book = tmp_path / "book.yaml"
    # Line 1 is the model, line 2 opens runtimes, line 3 its apr entry.
    book.write_text(f"model: {{id: org/cli, path: {tmp_path}}}\n{runtime}")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(book)
    [found] = caught.value.problems
    assert found.message.startswith(problem) and found.line == line, found


def test_sigint_kills_a_running_runtime_and_records_no_crash(tmp_path: Path) -> None:
    book = _book(tmp_path, _runtime("hang", timeout_s=600))
    out = tmp_path / "out"
    code = (
        "import sys; from pathlib import Path\n"
        "from apr_qa.execute import RunOptions, execute\n"
        "from apr_qa.playbook import load_playbook\n"
        f"o = execute([load_playbook(Path({str(book)!r}))], RunOptions(output_dir=Path({str(out)!r})))\n"
        "sys.exit(130 if o.interrupted else 0)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    # The runtime and its child are both running (the G2 probe hangs in them).
    while len(worker_processes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(worker_processes()) == 2
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    records = read_evidence([out / "evidence.jsonl"]).records
    assert not any(r.outcome in _FAILED for r in records)
    probe = [r for r in records if r.gate == "G2-INFER-001"]
    assert [r.outcome for r in probe] == [Outcome.SKIPPED]
    assert worker_processes() == []


def test_a_runtime_gets_the_resolved_gguf_of_a_real_model(tmp_path: Path) -> None:
    # Without the fake backend the cell's artifact is resolved as for llama.cpp; the
    # runtime is handed that file (the script refuses a path that is not a file).
    from apr_qa.fixtures import fixture_path

    book = _book(tmp_path, _runtime("ok", fmt="gguf"), fmt="gguf")
    model = fixture_path("tiny-llama")
    text = book.read_text().replace(str(tmp_path / "tiny.apr"), str(model))
    book.write_text(text.replace("formats: [gguf],", "formats: [gguf], quantizations: [q8_0],"))
    records = _run(tmp_path, book)
    cells = {r.cell for r in records if r.gate == "F-A1-001"}
    assert len(cells) == 1 and "q8_0" in next(iter(cells))
    assert {r.outcome for r in records if r.gate == "F-A1-001"} == {Outcome.CORROBORATED}
    assert {r.output for r in records if r.gate == "F-A1-001"} == {"5", "42"}
