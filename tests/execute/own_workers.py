"""The worker processes a test started, told apart from every other on the machine.

Other test runs share the machine, so counting every ``apr_qa.execute.worker``
process would fail a test for someone else's run. The autouse fixture in
conftest.py puts a marker unique to the test in the environment; the workers
the test starts inherit it (through a subprocess running the engine too, and
still after that subprocess died), and only processes that carry it count.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["OWNER_VAR", "RUNTIME_PROCESSES", "SUITE_VAR", "worker_processes"]

OWNER_VAR = "APR_QA_TEST_WORKER_OWNER"
SUITE_VAR = "APR_QA_TEST_SUITE_OWNER"
"""Set once for the whole test session (tests/conftest.py): what the suite started."""


RUNTIME_PROCESSES = (
    b"apr_qa.execute.worker",
    b"apr_qa.serve.app",
    b"llama_cpp.server",
    b"misbehaving.py",
    b"cli_runtime.py",
)
"""What the suite starts: workers, the servers of serve cells, the tests' own server, the
tests' command-line runtime."""


def worker_processes(marker_var: str = OWNER_VAR) -> list[int]:
    """Pids of live worker and server processes that carry this test's marker."""
    value = os.environ.get(marker_var)
    if value is None:
        return []
    marker = f"{marker_var}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if not any(name in cmdline for name in RUNTIME_PROCESSES):
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if marker in environ:
            pids.append(int(entry.name))
    return pids
