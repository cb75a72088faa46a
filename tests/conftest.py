"""Shared test helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "execute"))

from own_workers import SUITE_VAR, worker_processes

# Every process the suite starts inherits this marker, whatever test started it.
os.environ.setdefault(SUITE_VAR, f"{os.getpid()}-{uuid.uuid4().hex}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole suite, no worker or server the suite started may be left:
    one that is fails the run (and is killed, so it does not outlive it either)."""
    deadline = time.monotonic() + 10  # a server stopping at the very end gets its grace
    left = worker_processes(SUITE_VAR)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = worker_processes(SUITE_VAR)
    if not left:
        return
    for pid in left:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:200]
            sys.stderr.write(f"apr-qa suite: process {pid} left running: {cmdline.decode()}\n")
            os.kill(pid, signal.SIGKILL)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def write(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a text file under tmp_path and return its path."""

    def _write(text: str, name: str = "playbook.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
