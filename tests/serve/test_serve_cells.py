"""Serve cells through the engine: apr-qa starts a server per artifact (here its own
server over the fake backend), asks the scenarios over HTTP, judges them with the
same oracles, and stops the server; or it reaches a server at ``serve.url`` and
leaves it running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import misbehaving
from own_workers import worker_processes

from apr_qa.evidence import Outcome, Record, read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.playbook import load_playbook
from apr_qa.serve.http import Endpoint, get
from apr_qa.serve.launch import free_port, wait_ready

ANSWERS = {"What is 2 + 2?": "4", "Say hello.": "Hello there, friend."}
SCENARIOS = (
    "  - {name: add, prompt: 'What is 2 + 2?', oracle: arithmetic}\n"
    "  - {name: hello, prompt: 'Say hello.', oracle: contains, value: hello, case_sensitive: false}\n"
)


def _book(
    tmp_path: Path, model: dict[str, object], serve: str = "", timeout_ms: int = 20000
) -> Path:
    script = tmp_path / "fake-model.json"
    script.write_text(json.dumps({"answers": ANSWERS, "default": "I am fine.", **model}))
    book = tmp_path / "book.yaml"
    book.write_text(
        f"name: fake\nmodel: {{id: org/fake, path: {script}}}\n"
        "test_matrix: {modalities: [serve], backends: [cpu], formats: [gguf],"
        f" quantizations: [q8_0], timeout_ms: {timeout_ms}, scenario_count: 0, max_tokens: 16}}\n"
        f"failure_policy: collect-all\n{serve}scenarios:\n{SCENARIOS}"
    )
    return book


def _run(tmp_path: Path, book: Path) -> list[Record]:
    out = tmp_path / "out"
    execute([load_playbook(book)], RunOptions(output_dir=out, backend_override="fake"))
    return read_evidence([out / "evidence.jsonl"]).records


def _outcomes(records: list[Record], prefix: str) -> dict[str, Outcome]:
    return {r.gate: r.outcome for r in records if r.gate.startswith(prefix)}


def test_a_served_model_is_judged_over_http_and_its_server_stopped(tmp_path: Path) -> None:
    records = _run(tmp_path, _book(tmp_path, {}))
    scenario = {r.scenario.name: r for r in records if r.gate == "F-A3-001" and r.scenario}
    assert {n: r.outcome for n, r in scenario.items()} == {
        "add": Outcome.CORROBORATED,
        "hello": Outcome.CORROBORATED,
    }
    assert scenario["add"].output == "4"  # the fake's answer, come back over HTTP
    gates = _outcomes(records, "F-HTTP-")
    assert len(gates) == 12 and set(gates.values()) == {Outcome.CORROBORATED}, gates
    assert _outcomes(records, "G")["G1-LOAD-001"] is Outcome.CORROBORATED
    assert worker_processes() == []


def test_a_wrong_answer_over_http_is_falsified(tmp_path: Path) -> None:
    # The same oracle as in-process: a model answering 5 fails the arithmetic scenario.
    records = _run(tmp_path, _book(tmp_path, {"answers": {"What is 2 + 2?": "5"}}))
    add = [r for r in records if r.gate == "F-A3-001" and r.scenario and r.scenario.name == "add"]
    assert [r.outcome for r in add] == [Outcome.FALSIFIED]


def test_a_server_that_cannot_load_fails_g1_and_leaves_nothing(tmp_path: Path) -> None:
    records = _run(tmp_path, _book(tmp_path, {"fail_load": "corrupt weights"}))
    load = [r for r in records if r.gate == "G1-LOAD-001"]
    assert [r.outcome for r in load] == [Outcome.FALSIFIED]
    assert "corrupt weights" in load[0].reason
    assert worker_processes() == []


def test_a_serve_url_cell_reaches_an_outside_server_and_leaves_it_running(
    tmp_path: Path,
) -> None:
    port = free_port()
    os.environ.pop("APR_QA_TEST_KEY", None)
    outside = subprocess.Popen([sys.executable, str(Path(misbehaving.__file__)), str(port), "leak"])
    try:
        endpoint = Endpoint(f"http://127.0.0.1:{port}")
        assert wait_ready(endpoint, 30)[0]
        serve = f"serve: {{url: 'http://127.0.0.1:{port}/v1', api_key_env: APR_QA_TEST_KEY}}\n"
        records = _run(tmp_path, _book(tmp_path, {}, serve))
        gates = _outcomes(records, "F-HTTP-")
        assert gates["F-HTTP-005"] is Outcome.FALSIFIED  # this server leaks <|im_end|>
        assert gates["F-HTTP-002"] is Outcome.CORROBORATED
        assert gates["F-HTTP-012"] is Outcome.SKIPPED  # not ours to stop
        assert outside.poll() is None and get(endpoint, "/v1/models", 5).status == 200
    finally:
        outside.kill()
        outside.wait()


def test_a_serve_command_server_that_ignores_sigterm_fails_f_http_012_and_is_killed(
    tmp_path: Path,
) -> None:
    # The playbook's own command line (a list: no shell), with {port} filled in.
    server = json.dumps([sys.executable, str(Path(misbehaving.__file__)), "{port}", "ignore-term"])
    serve = f"serve: {{command: {server}, stop_grace_s: 1}}\n"
    records = _run(tmp_path, _book(tmp_path, {}, serve))
    gates = _outcomes(records, "F-HTTP-")
    assert gates["F-HTTP-012"] is Outcome.FALSIFIED, gates
    assert gates["F-HTTP-002"] is Outcome.CORROBORATED
    assert worker_processes() == []  # killed after the grace period, group and all


def test_a_server_killed_by_a_huge_max_tokens_is_a_crash_and_is_restarted(
    tmp_path: Path,
) -> None:
    server = json.dumps([sys.executable, str(Path(misbehaving.__file__)), "{port}", "die-on-large"])
    records = _run(tmp_path, _book(tmp_path, {}, f"serve: {{command: {server}}}\n"))
    assert _outcomes(records, "F-HTTP-")["F-HTTP-009"] is Outcome.FALSIFIED
    assert _outcomes(records, "G3-CRASH")["G3-CRASH-001"] is Outcome.FALSIFIED
    add = [r for r in records if r.gate == "F-A3-001" and r.scenario and r.scenario.name == "add"]
    assert [r.outcome for r in add] == [Outcome.CORROBORATED]  # asked of a new server
    assert worker_processes() == []


def test_sigint_mid_cell_stops_the_run_and_its_server(tmp_path: Path) -> None:
    # The model hangs on a scenario, so the run sits inside a serve cell with its
    # server up; SIGINT must end the run and take the server with it.
    book = _book(tmp_path, {"hang_on": "Say hello"})
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from apr_qa.execute import RunOptions, execute\n"
        "from apr_qa.playbook import load_playbook\n"
        "outcome = execute([load_playbook(Path(sys.argv[1]))],"
        " RunOptions(output_dir=Path(sys.argv[2]), backend_override='fake'))\n"
        "sys.exit(130 if outcome.interrupted else 0)\n"
    )
    run = subprocess.Popen([sys.executable, "-c", code, str(book), str(tmp_path / "out")])
    try:
        deadline = time.monotonic() + 120
        while not _serving() and time.monotonic() < deadline:
            assert run.poll() is None, "the run ended before its server started"
            time.sleep(0.2)
        assert _serving(), "no server came up"
        time.sleep(1.0)  # into the cell's work
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 130
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert worker_processes() == []


def _serving() -> bool:
    """Whether this test's run has a server up (its command line names the app)."""
    for pid in worker_processes():
        with contextlib.suppress(OSError):
            if b"apr_qa.serve.app" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
    return False


def test_a_server_hung_past_the_timeout_is_killed_and_g3_hang_fails(tmp_path: Path) -> None:
    records = _run(tmp_path, _book(tmp_path, {"hang_on": "Say hello"}, timeout_ms=3000))
    hello = [
        r for r in records if r.gate == "F-A3-001" and r.scenario and r.scenario.name == "hello"
    ]
    assert [r.outcome for r in hello] == [Outcome.TIMEOUT]
    assert _outcomes(records, "G3-HANG")["G3-HANG-001"] is Outcome.FALSIFIED
    assert _outcomes(records, "F-HTTP-")["F-HTTP-012"] is Outcome.SKIPPED  # killed, not asked
    assert worker_processes() == []
