"""Signals at random points of a real run: every way a run is stopped from outside
still exits 130, writes every report saying INTERRUPTED, keeps every record decided
before the signal, and leaves no worker behind.

The sequences are the ones users and CI send: Ctrl-C once, twice, three times
(impatience); SIGINT then SIGTERM (GitHub cancelling a job); SIGTERM alone (a
container stopped); SIGHUP (the terminal closed). SIGKILL cannot be handled; what
it leaves (the evidence so far, a free directory) is tested in test_output_dir.py
and documented in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from tests.conftest import REPO
from tests.execute.own_workers import worker_processes
from tests.robustness.real_runs import (
    START_BOUND_S,
    complete_lines,
    decided_ids,
    start_run,
    tiny_llama_playbook,
    wait_for_records,
    worker_owner,
)

from apr_qa.evidence import HaltKind, Outcome, read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.execute.interrupts import Interrupts
from apr_qa.playbook import load_playbook

pytestmark = pytest.mark.usefixtures(worker_owner.__name__)

REPORTS = ("summary.json", "junit.xml", "report.html", "summary.md", "comment.md")
EXIT_BOUND_S = 120
"""How long a signalled run may take to exit before the test calls it a hang. Not a
timing assertion: a run that stops at all stops in seconds; this only ends the wait."""
DELAY_RANGE_S = (0.0, 6.0)
"""Where the signal lands, after the first record: G0 checks, model loads, scenarios."""


SEQUENCES: dict[str, tuple[signal.Signals, ...]] = {
    "one-sigint": (signal.SIGINT,),
    "two-sigints": (signal.SIGINT, signal.SIGINT),
    "three-sigints": (signal.SIGINT, signal.SIGINT, signal.SIGINT),
    "sigint-then-sigterm": (signal.SIGINT, signal.SIGTERM),  # GitHub cancelling a job
    "sigterm": (signal.SIGTERM,),
    "sighup": (signal.SIGHUP,),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SEQUENCES))
def test_signals_at_a_random_point_leave_a_complete_interrupted_run(
    tmp_path: Path, name: str
) -> None:
    signals = SEQUENCES[name]
    delay = random.Random(zlib.crc32(name.encode())).uniform(*DELAY_RANGE_S)
    out = tmp_path / "out"
    evidence = out / "evidence.jsonl"
    # Four cells (GGUF and safetensors, run and chat), 60 generated scenarios each:
    # minutes of work, so every signal lands mid-run.
    book = tiny_llama_playbook(
        tmp_path,
        "signals",
        formats="[gguf, safetensors]",
        modalities="[run, chat]",
        scenario_count=60,
    )
    proc = start_run("-w", "2", "-o", str(out), str(book))
    try:
        wait_for_records(proc, evidence)
        time.sleep(delay)
        assert proc.poll() is None, "the run finished before the signal: make it longer"
        before = decided_ids(complete_lines(evidence))
        for i, sig in enumerate(signals):
            if i:
                time.sleep(0.1)
            os.kill(proc.pid, sig)
        stdout, stderr = proc.communicate(timeout=EXIT_BOUND_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    context = f"{name} after {delay:.2f} s; stderr:\n{stderr[-3000:]}"
    assert proc.returncode == 130, context
    assert "Traceback" not in stderr, context

    read = read_evidence([evidence])
    assert read.warnings == [], context
    after = {r.record_id for r in read.records}
    assert before <= after, f"records decided before the signal were lost: {context}"
    assert any(r.halted is HaltKind.INTERRUPTED for r in read.records), context

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    (model,) = summary["models"]
    assert model["halted"] == "interrupted", context
    assert f"interrupted by {signals[0].name}" in model["halted_reason"], context
    ET.parse(out / "junit.xml")
    for report in ("report.html", "summary.md"):
        assert "interrupted by" in (out / report).read_text(encoding="utf-8"), (report, context)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".apr-qa.lock"]
    verdicts = [line for line in stdout.splitlines() if line.startswith("INTERRUPTED")]
    assert verdicts, f"no INTERRUPTED verdict line: {stdout[-2000:]}"
    assert worker_processes() == [], context


# --- in process: the handler re-entered while the engine runs ------------------------


def _hanging_fake(tmp_path: Path) -> Path:
    """A fake model that answers two scenarios and hangs on the third: the run waits
    there until it is interrupted."""
    model = tmp_path / "fake.json"
    model.write_text(json.dumps({"answers": {"What is 2 + 2?": "4"}, "hang_on": "HANG"}))
    book = tmp_path / "book.yaml"
    book.write_text(
        f"name: fake\nmodel: {{id: org/fake, path: {model}}}\n"
        "test_matrix: {modalities: [run, chat], backends: [cpu], formats: [gguf],"
        " quantizations: [q8_0], timeout_ms: 600000, max_tokens: 16}\n"
        "failure_policy: collect-all\n"
        "scenarios:\n"
        "  - {name: add, prompt: 'What is 2 + 2?', oracle: arithmetic}\n"
        "  - {name: add-again, prompt: 'What is 2 + 2?', oracle: arithmetic, expected: 4}\n"
        "  - {name: hang, prompt: 'HANG here', oracle: garbage}\n"
    )
    return book


@pytest.mark.parametrize("count", [1, 3])
def test_sigints_into_a_run_that_owns_its_signals_return_an_interrupted_outcome(
    tmp_path: Path, count: int
) -> None:
    out = tmp_path / "out"
    evidence = out / "evidence.jsonl"
    playbook = load_playbook(_hanging_fake(tmp_path))
    sent = threading.Event()
    before: set[str] = set()

    def interrupt() -> None:
        deadline = time.monotonic() + START_BOUND_S
        # Both answered scenarios of the run cell decided: its worker now hangs.
        while len(complete_lines(evidence)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        before.update(decided_ids(complete_lines(evidence)))
        for _ in range(count):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
        sent.set()

    sender = threading.Thread(target=interrupt, daemon=True)
    # As api.run does: the signals stay caught after the engine returns, so the later
    # ones of a burst are absorbed (they used to raise KeyboardInterrupt here, in the
    # middle of whatever came next: writing the reports).
    with Interrupts().installed() as interrupts:
        sender.start()
        outcome = execute(
            [playbook],
            RunOptions(output_dir=out, backend_override="fake"),
            interrupts=interrupts,
        )
        sender.join(timeout=EXIT_BOUND_S)
    assert sent.is_set()
    assert interrupts.received is signal.SIGINT
    assert outcome.interrupted is signal.SIGINT
    assert outcome.halted == {"org/fake": "interrupted by SIGINT"}
    read = read_evidence([evidence])
    assert read.warnings == []
    assert before <= {r.record_id for r in read.records}
    hung = [r for r in read.records if r.scenario and r.scenario.name == "hang"]
    assert len(hung) == 2  # run and chat: one cut short, one never started
    assert all(r.outcome is Outcome.SKIPPED and r.halted is HaltKind.INTERRUPTED for r in hung)
    corroborated = [r for r in read.records if r.outcome is Outcome.CORROBORATED]
    assert any(r.scenario and r.scenario.name == "add-again" for r in corroborated)
    g4 = [r for r in read.records if r.gate.startswith("G4-")]
    assert g4 and all("the evidence is partial" in r.reason for r in g4)
    assert worker_processes() == []


@pytest.mark.parametrize("baseline", [False, True], ids=["alone", "with-baseline"])
def test_a_signal_before_the_engine_starts_leaves_every_check_skipped(
    tmp_path: Path, baseline: bool
) -> None:
    out = tmp_path / "out"
    book = _hanging_fake(tmp_path)
    if baseline:  # the baseline's gates apply, so they are recorded as not decided too
        (tmp_path / "before.jsonl").write_text("")
        book.write_text(book.read_text() + "regression: {baseline: before.jsonl}\n")
    playbook = load_playbook(book)
    with Interrupts().installed() as interrupts:
        os.kill(os.getpid(), signal.SIGTERM)  # handled before kill() returns to us
        assert interrupts.received is signal.SIGTERM
        outcome = execute(
            [playbook],
            RunOptions(output_dir=out, backend_override="fake"),
            interrupts=interrupts,
        )
    assert outcome.interrupted is signal.SIGTERM
    records = read_evidence([out / "evidence.jsonl"]).records
    # Two cells of three scenarios, G4 undecided, and the baseline's two gates if named.
    assert len(records) == 2 * 3 + 1 + 2 * baseline
    assert sum(r.gate.startswith("F-REGR-BASE-") for r in records) == 2 * baseline
    assert all(r.outcome is Outcome.SKIPPED for r in records)
    assert all(r.halted is HaltKind.INTERRUPTED for r in records)
    assert worker_processes() == []


# --- the command line: a signal at a chosen point, injected into the real program -------

_INJECT = """
import os, signal, sys
import {module} as target
original = target.{attr}
fired = []
def signalled(*args, **kwargs):
    if not fired:
        fired.append(True)
        os.kill(os.getpid(), signal.{signal})
    return original(*args, **kwargs)
target.{attr} = signalled
from apr_qa.cli import main
sys.argv = ["apr-qa", *sys.argv[1:]]
main()
"""

PHASES = {
    # Loading the playbooks, before the run owns anything.
    "load": ("apr_qa.api", "load"),
    # The output directory checked, before the first cell: nothing decided yet.
    "start": ("apr_qa.report", "check_report_paths"),
    # Every check decided, the reports being written.
    "reports": ("apr_qa.report", "render_reports"),
}


def _run_signalled(
    tmp_path: Path, phase: str, sig: signal.Signals
) -> subprocess.CompletedProcess[str]:
    module, attr = PHASES[phase]
    code = _INJECT.format(module=module, attr=attr, signal=sig.name)
    out = tmp_path / "out"
    return subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "run",
            "-o",
            str(out),
            str(tiny_llama_playbook(tmp_path, "small")),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=START_BOUND_S,
        check=False,
        start_new_session=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_termination_while_loading_is_exit_130_with_one_line(
    tmp_path: Path, sig: signal.Signals
) -> None:
    done = _run_signalled(tmp_path, "load", sig)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == ["apr-qa: interrupted"]
    assert not (tmp_path / "out").exists()  # nothing was started


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_a_signal_before_the_first_cell_reports_every_check_skipped(
    tmp_path: Path, sig: signal.Signals
) -> None:
    done = _run_signalled(tmp_path, "start", sig)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    out = tmp_path / "out"
    records = read_evidence([out / "evidence.jsonl"]).records
    assert records and all(r.outcome is Outcome.SKIPPED for r in records)
    assert all(r.halted is HaltKind.INTERRUPTED for r in records)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["models"][0]["halted"] == "interrupted"
    assert any(line.startswith("INTERRUPTED") for line in done.stdout.splitlines()), done.stdout
    assert worker_processes() == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_a_signal_while_the_reports_are_written_leaves_them_complete(
    tmp_path: Path, sig: signal.Signals
) -> None:
    done = _run_signalled(tmp_path, "reports", sig)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"interrupted by {sig.name} after the last check" in done.stderr
    out = tmp_path / "out"
    records = read_evidence([out / "evidence.jsonl"]).records
    assert not any(r.halted for r in records)  # the evidence is whole
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["models"][0]["halted"] is None
    ET.parse(out / "junit.xml")
    assert all((out / name).is_file() for name in REPORTS)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".apr-qa.lock"]
    assert worker_processes() == []
