"""The output directory: refused before any model loads when the reports could not go
there; owned by one run at a time; reports replaced whole or not at all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.conftest import REPO
from tests.execute.own_workers import worker_processes
from tests.robustness.real_runs import (
    START_BOUND_S,
    start_run,
    tiny_llama_playbook,
    wait_for_records,
    worker_owner,
)

from apr_qa import api
from apr_qa.cli import cli
from apr_qa.evidence import read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.playbook import load_playbook
from apr_qa.report import REPORT_FILES

pytestmark = pytest.mark.usefixtures(worker_owner.__name__)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What of a run got started: its warm workers, its engine. Both are reached only
    past the output directory's checks, so a refused directory leaves this empty."""
    import apr_qa.execute
    from apr_qa.execute.warm import WarmPool

    calls: list[str] = []
    real_pool = WarmPool.for_playbooks.__func__  # type: ignore[attr-defined]
    real_execute = apr_qa.execute.execute

    def pool(cls: type[WarmPool], *args: object, **kwargs: object) -> WarmPool:
        calls.append("warm workers")
        return real_pool(cls, *args, **kwargs)  # type: ignore[no-any-return]

    def engine(*args: object, **kwargs: object) -> object:
        calls.append("engine")
        return real_execute(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(WarmPool, "for_playbooks", classmethod(pool))
    monkeypatch.setattr(apr_qa.execute, "execute", engine)
    return calls


def _run_into(output: Path | str, book: Path) -> Result:
    return CliRunner().invoke(cli, ["run", "-o", str(output), str(book)])


def _assert_one_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("apr-qa: error: "), line
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize(
    ("output", "why"),
    [
        ("/proc/apr-qa-x", "cannot create the output directory"),
        ("/sys/apr-qa-x", "cannot create the output directory"),
        ("/dev/full/x", "cannot create the output directory (Not a directory)"),
        ("/dev/full", "exists and is not a directory"),
    ],
)
def test_an_output_directory_that_cannot_be_made_is_one_error_before_any_model_loads(
    tmp_path: Path, started: list[str], output: str, why: str
) -> None:
    result = _run_into(output, tiny_llama_playbook(tmp_path, "book"))
    _assert_one_error(result, output, why)
    assert started == []


def test_a_good_output_directory_gets_as_far_as_the_engine(
    tmp_path: Path, started: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the refusals above: the same command into a usable directory
    starts workers and the engine (which fails there at once: the warm workers it was
    handed must not outlive the run)."""
    import apr_qa.execute

    def stop_here(*args: object, **kwargs: object) -> object:
        started.append("engine")
        deadline = time.monotonic() + START_BOUND_S
        while not worker_processes() and time.monotonic() < deadline:
            time.sleep(0.05)  # the warm worker is running its own program
        started.append(f"{len(worker_processes())} worker")
        raise KeyboardInterrupt

    monkeypatch.setattr(apr_qa.execute, "execute", stop_here)
    result = _run_into(tmp_path / "out", tiny_llama_playbook(tmp_path, "book"))
    assert result.exit_code == 130, result.output
    assert started == ["warm workers", "engine", "1 worker"]
    assert worker_processes() == []


@pytest.mark.parametrize("name", ["report.html", "evidence.jsonl", "summary.json", "comment.md"])
def test_a_directory_under_a_report_name_is_one_error_before_any_model_loads(
    tmp_path: Path, started: list[str], name: str
) -> None:
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    result = _run_into(out, tiny_llama_playbook(tmp_path, "book"))
    _assert_one_error(result, str(out / name), "not a regular file")
    assert started == []
    assert sorted(p.name for p in out.iterdir()) == [name]  # no evidence, no lock, no probe


# --- ownership: one run at a time, a new run replaces the last ---------------------------


def _run_ids(evidence: Path) -> set[str]:
    read = read_evidence([evidence])
    assert read.warnings == []
    return {r.run_id for r in read.records}


@pytest.mark.slow
def test_a_second_run_into_a_busy_directory_is_refused_and_the_first_keeps_its_evidence(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    evidence = out / "evidence.jsonl"
    first = start_run("-o", str(out), str(tiny_llama_playbook(tmp_path, "first", scenario_count=8)))
    try:
        wait_for_records(first, evidence)
        second = _run_into(out, tiny_llama_playbook(tmp_path, "second"))
        first_running = first.poll() is None
        stdout, stderr = first.communicate(timeout=START_BOUND_S)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.communicate()
    assert first_running, "the first run ended before the second tried: make it longer"
    _assert_one_error(second, f"another apr-qa run (pid {first.pid}) is writing there")
    assert first.returncode in (0, 1), stderr
    (run_id,) = _run_ids(evidence)  # one run's records only
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [m["model"] for m in summary["models"]] == ["apr-qa/tiny-llama"]
    assert all(str(out / f) in stdout for f in REPORT_FILES.values())

    # Once the first is done, the directory is free: a new run replaces its evidence.
    again = _run_into(out, tiny_llama_playbook(tmp_path, "second"))
    assert again.exit_code in (0, 1), again.output
    (new_run_id,) = _run_ids(evidence)
    assert new_run_id != run_id
    assert worker_processes() == []


def test_a_report_into_a_directory_a_run_owns_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    evidence = _fake_evidence(tmp_path)
    holder = subprocess.Popen(  # holds the directory's lock as a run does, then waits
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from apr_qa import api\n"
            f"with api._owned(Path({str(out)!r})):\n"
            "    print('owned', flush=True); time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "owned"
        refused = CliRunner().invoke(cli, ["report", str(evidence), "-o", str(out)])
    finally:
        holder.kill()
        holder.wait()
    _assert_one_error(refused, f"another apr-qa run (pid {holder.pid}) is writing there")
    assert not (out / "summary.json").exists()
    done = CliRunner().invoke(cli, ["report", str(evidence), "-o", str(out)])
    assert done.exit_code in (0, 1), done.output
    assert (out / "summary.json").is_file()


@pytest.mark.slow
def test_a_killed_run_keeps_its_evidence_and_frees_the_directory(tmp_path: Path) -> None:
    """SIGKILL cannot be caught: no reports, but every record written so far reads back,
    the lock dies with the process, and the orphaned workers exit by themselves."""
    out = tmp_path / "out"
    evidence = out / "evidence.jsonl"
    run = start_run("-o", str(out), str(tiny_llama_playbook(tmp_path, "first", scenario_count=30)))
    try:
        wait_for_records(run, evidence, count=4)
    finally:
        os.kill(run.pid, signal.SIGKILL)  # the parent only: its workers are orphaned
        run.communicate()
    read = read_evidence([evidence])
    assert len(read.records) >= 4
    assert len(read.warnings) <= 1  # at most a last line cut in the middle
    assert not (out / "summary.json").exists()
    deadline = time.monotonic() + START_BOUND_S
    while worker_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker_processes() == [], "workers outlived their killed parent"
    again = _run_into(out, tiny_llama_playbook(tmp_path, "second"))
    assert again.exit_code in (0, 1), again.output


# --- atomic reports ------------------------------------------------------------------


def _fake_evidence(tmp_path: Path) -> Path:
    model = tmp_path / "fake.json"
    model.write_text(json.dumps({"answers": {"What is 2 + 2?": "4"}, "default": "Fine."}))
    book = tmp_path / "fake.yaml"
    book.write_text(
        f"name: fake\nmodel: {{id: org/fake, path: {model}}}\n"
        "test_matrix: {modalities: [run, chat], backends: [cpu], formats: [gguf],"
        " quantizations: [q8_0], scenario_count: 6, max_tokens: 16}\n"
        "failure_policy: collect-all\n"
        "scenarios:\n  - {name: add, prompt: 'What is 2 + 2?', oracle: arithmetic}\n"
    )
    out = tmp_path / "fake-run"
    execute([load_playbook(book)], RunOptions(output_dir=out, backend_override="fake"))
    return out / "evidence.jsonl"


_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
# Writes past the limit fail with EFBIG (as on a full disk) instead of killing us.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))
from apr_qa.cli import main
sys.argv = ["apr-qa", *sys.argv[1:]]
try:
    main()
finally:  # the limit is for the reports: lift it for exit hooks (coverage saves its data)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
"""


def test_a_report_write_that_fails_half_way_leaves_the_old_report_whole(tmp_path: Path) -> None:
    evidence = _fake_evidence(tmp_path)
    out = tmp_path / "out"
    api.report([evidence], out)
    before = {name: (out / name).read_bytes() for name in REPORT_FILES.values()}
    limit = 1024
    assert len(before["summary.json"]) > limit  # so its write really fails half way
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _UNDER_A_FILE_SIZE_LIMIT.format(limit=limit),
            "report",
            str(evidence),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=START_BOUND_S,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"apr-qa: error: {out / 'summary.json'}: cannot write the report (File too large)"
    ]
    after = {name: (out / name).read_bytes() for name in REPORT_FILES.values()}
    assert after == before
    left = sorted(p.name for p in out.iterdir() if p.name != api.LOCK_NAME)
    assert left == sorted(before)  # no temporary file left behind


def test_reports_keep_the_permissions_a_new_file_gets(tmp_path: Path) -> None:
    """Written through a temporary file, a report must not end up private (0600):
    CI uploads and shared runners read it as any other file."""
    out = tmp_path / "out"
    api.report([_fake_evidence(tmp_path)], out)
    umask = os.umask(0)
    os.umask(umask)
    for name in REPORT_FILES.values():
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
