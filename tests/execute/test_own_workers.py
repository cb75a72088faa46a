"""The engine tests' leak check sees this test's workers, and only them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from own_workers import OWNER_VAR, worker_processes

from apr_qa.execute.client import WorkerClient
from apr_qa.execute.messages import Ping


def _started() -> WorkerClient:
    client = WorkerClient()
    client.request(Ping(), timeout_s=120)  # answered: the worker has exec'd
    return client


def test_a_live_worker_of_this_test_is_seen_until_it_is_closed() -> None:
    client = _started()
    try:
        assert worker_processes() == [client.pid]
    finally:
        client.close()
    assert worker_processes() == []


def test_a_worker_orphaned_by_a_dead_parent_is_still_seen() -> None:
    # The engine in a subprocess starts a worker, then dies without closing it.
    code = (
        "import os\n"
        "from apr_qa.execute.client import WorkerClient\n"
        "from apr_qa.execute.messages import Ping\n"
        "client = WorkerClient()\n"
        "client.request(Ping(), timeout_s=120)\n"
        "print(client.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    orphan = int(done.stdout)
    try:
        assert worker_processes() == [orphan]
    finally:
        os.killpg(orphan, signal.SIGKILL)


def test_another_runs_worker_is_not_counted() -> None:
    client = WorkerClient(env={**os.environ, OWNER_VAR: "someone-else"})
    try:
        client.request(Ping(), timeout_s=120)
        assert client.alive() and worker_processes() == []
    finally:
        client.close()


def test_the_suite_marker_sees_a_server_left_running_and_nothing_once_it_is_stopped() -> None:
    # What tests/conftest.py checks after the whole suite, shown able to fail.
    from pathlib import Path

    from own_workers import SUITE_VAR

    from apr_qa.serve.http import Endpoint
    from apr_qa.serve.launch import Server, free_port, wait_ready

    port = free_port()
    script = Path(__file__).resolve().parents[1] / "serve" / "misbehaving.py"
    server = Server([sys.executable, str(script), str(port)])
    stopped = False
    try:
        assert wait_ready(Endpoint(f"http://127.0.0.1:{port}"), 60, alive=server)[0]
        assert server.pid in worker_processes(SUITE_VAR)
        server.stop(grace_s=30)
        stopped = True
        assert server.pid not in worker_processes(SUITE_VAR)
    finally:
        if not stopped:
            server.kill()
