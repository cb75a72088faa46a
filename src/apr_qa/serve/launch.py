"""Start a server for one artifact, wait until it answers, and always stop it.

The server runs in its own session (process group), so stopping it, or the
run's interrupt handler, takes its children too: no orphan survives a crash, a
timeout or SIGINT. Stopping sends SIGTERM first and records whether the server
went within the grace period (F-HTTP-012), then SIGKILLs the group.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from apr_qa.serve.http import Endpoint, get
from apr_qa.serve.spec import ServeSpec

__all__ = [
    "HOST",
    "LLAMA_SERVER_MODULES",
    "Server",
    "Shutdown",
    "StartFailed",
    "free_port",
    "missing_runtime",
    "server_command",
    "wait_ready",
]

HOST = "127.0.0.1"
STDERR_TAIL_BYTES = 2000
LLAMA_SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "starlette_context")
"""What ``python -m llama_cpp.server`` imports beyond llama_cpp (its ``[server]`` extra)."""


class StartFailed(Exception):
    """The server did not come up; the message says why (with its stderr tail)."""


@dataclass(frozen=True)
class Shutdown:
    """How a server we started went when asked to stop."""

    graceful: bool
    seconds: float
    returncode: int | None


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def missing_runtime(spec: ServeSpec, fmt: str) -> str | None:
    """Why the default server for ``fmt`` cannot start here (its extra is not
    installed), or None. Not the model's fault: the cell is skipped with this."""
    if spec.url or spec.command:
        return None
    engine = spec.engine if spec.engine != "auto" else ("llama-cpp" if fmt == "gguf" else "")
    if engine != "llama-cpp":
        return None
    missing = [m for m in LLAMA_SERVER_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (
        f"llama_cpp.server needs the extra llama-cpp-python[server] (missing: {', '.join(missing)})"
    )


def server_command(
    spec: ServeSpec, fmt: str, model: str, device: str, port: int, backend: str | None = None
) -> tuple[str, ...]:
    """The command line that serves ``model`` on ``port``.

    ``backend`` forces apr-qa's own server over that backend (engine tests serve
    the fake backend). Raises :class:`StartFailed` when the engine's runtime is
    not installed.
    """
    if spec.command:
        values = {"model": model, "host": HOST, "port": str(port), "device": device}
        return tuple(part.format(**values) for part in spec.command)
    engine = "apr-qa" if backend else spec.engine
    if engine == "auto":
        engine = "llama-cpp" if fmt == "gguf" else "apr-qa"
    if engine == "llama-cpp":
        if (why := missing_runtime(spec, fmt)) is not None:
            raise StartFailed(why)
        gpu_layers = "-1" if device == "gpu" else "0"
        return (
            sys.executable, "-m", "llama_cpp.server", "--model", model,
            "--host", HOST, "--port", str(port), "--n_gpu_layers", gpu_layers,
            "--n_ctx", "0", "--verbose", "false",
        )  # fmt: skip
    if engine == "apr-qa":
        backend = backend or ("llama_cpp" if fmt == "gguf" else "transformers")
        return (
            sys.executable, "-m", "apr_qa.serve.app", "--backend", backend, "--model", model,
            "--device", device, "--host", HOST, "--port", str(port),
            "--max-tokens-cap", str(spec.max_tokens_cap),
        )  # fmt: skip
    raise StartFailed(f"unknown serve engine {engine!r} (auto, llama-cpp or apr-qa)")


def wait_ready(
    endpoint: Endpoint, timeout_s: float, alive: Server | None = None
) -> tuple[bool, str]:
    """Poll ``GET /v1/models`` until it answers 200; (ready, what was last seen)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if alive is not None and not alive.alive():
            return False, f"the server exited ({alive.returncode()}) before it was ready"
        reply = get(endpoint, "/v1/models", min(5.0, max(0.1, deadline - time.monotonic())))
        if reply.status == 200:
            return True, "ready"
        last = reply.error or f"HTTP {reply.status}"
        time.sleep(0.2)
    return False, f"not ready within {timeout_s:.0f} s ({last})"


class Server:
    """One server process we started, in its own process group."""

    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        # Lives as long as the server: a crash report reads its tail.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.command = tuple(command)
        self._proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
            env=env,
            start_new_session=True,  # its own group: a kill takes its children too
        )

    @property
    def pid(self) -> int:
        """The server's process id (also its process group id)."""
        return self._proc.pid

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self._proc.poll() is None

    def returncode(self) -> int | None:
        """The exit status once it exited."""
        return self._proc.poll()

    def stderr_tail(self) -> str:
        """The last bytes the server wrote."""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - STDERR_TAIL_BYTES))
        return self._stderr.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the server's process group and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()

    def stop(self, grace_s: float = 10.0) -> Shutdown:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL the group; how it went."""
        started = time.perf_counter()
        if self._proc.poll() is not None:
            self.kill()
            self._stderr.close()
            return Shutdown(False, 0.0, self._proc.returncode)
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self._proc.wait(timeout=grace_s)
            graceful = True
        except subprocess.TimeoutExpired:
            code, graceful = None, False
        self.kill()  # the group: whatever the server left behind goes too
        self._stderr.close()
        return Shutdown(graceful, time.perf_counter() - started, code)
