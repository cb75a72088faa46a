"""The parent's handle on one worker process: requests with deadlines, kill, crash tails."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol

from apr_qa.execute import messages
from apr_qa.execute.messages import ProtocolError

__all__ = ["Answer", "Worker", "WorkerClient", "WorkerDied", "WorkerTimeout", "answer_directly"]

STDERR_TAIL_BYTES = 2000


class WorkerDied(Exception):
    """The worker exited (by a signal or otherwise) before answering."""

    def __init__(self, returncode: int | None, stderr_tail: str) -> None:
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.signal_name = _signal_name(returncode)
        super().__init__(f"worker died ({self.signal_name}); stderr: {stderr_tail[-300:]}")


class WorkerTimeout(Exception):
    """The worker did not answer within the deadline and was killed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"no answer within {seconds:.1f} s; worker killed")


def _signal_name(returncode: int | None) -> str:
    if returncode is None:
        return "no exit status"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


@dataclass(frozen=True)
class Answer:
    """A worker's reply, with the wall time the parent waited for it."""

    reply: messages.Reply
    wall_s: float


def answer_directly(
    request: messages.Request,
    timeout_s: float,
    *,
    load: Callable[[], messages.Reply],
    generate: Callable[[messages.Generate, float], messages.Reply],
    who: str,
) -> Answer:
    """A request honoured by a worker that is not a worker process (a server, a command
    line): Load, Generate and Ping; anything else ``who`` cannot answer is Failed."""
    started = time.perf_counter()
    reply: messages.Reply
    if isinstance(request, messages.Load):
        reply = load()
    elif isinstance(request, messages.Generate):
        reply = generate(request, timeout_s)
    elif isinstance(request, messages.Ping):
        reply = messages.Pong()
    else:
        reply = messages.Failed(f"{who} cannot answer {type(request).__name__}")
    return Answer(reply, time.perf_counter() - started)


class Worker(Protocol):
    """What a cell drives: a worker process, or a server standing in for one
    (:class:`apr_qa.execute.server_client.ServerClient`)."""

    @property
    def pid(self) -> int | None:
        """The process group to kill on interrupt; None for a server we did not start."""
        ...

    def alive(self) -> bool:
        """Whether it still runs."""
        ...

    def request(self, request: messages.Request, timeout_s: float) -> Answer:
        """One request, answered within ``timeout_s`` or :class:`WorkerTimeout`."""
        ...

    def kill(self) -> None:
        """Stop it now."""
        ...

    def close(self) -> None:
        """Stop it politely."""
        ...


class WorkerClient:
    """Spawns ``python -m apr_qa.execute.worker`` and talks to it in JSON lines."""

    def __init__(self, env: dict[str, str] | None = None, *, warm: str | None = None) -> None:
        # Lives as long as the client (closed in close()): the crash report reads its tail.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "apr_qa.execute.worker", *(["--warm", warm] if warm else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,  # its own process group: a kill takes its children too
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin = self._proc.stdin
        self._stdout = self._proc.stdout
        self._buffer = b""

    def alive(self) -> bool:
        """Whether the worker process is still running."""
        return self._proc.poll() is None

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._proc.pid

    def stderr_tail(self) -> str:
        """The last bytes the worker wrote to stderr."""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - STDERR_TAIL_BYTES))
        return self._stderr.read().decode("utf-8", "replace")

    def request(self, request: messages.Request, timeout_s: float) -> Answer:
        """Send one request and wait for its reply; kill the worker at the deadline.

        A reply that is not a message of the protocol means the worker is not
        speaking it any more (a library wrote to the pipe): it is killed and
        treated as dead, with its stderr tail.
        """
        started = time.perf_counter()
        try:
            self._stdin.write(messages.encode(request))
            self._stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died() from None
        line = self._read_line(started + timeout_s)
        if line is None:
            self.kill()
            raise WorkerTimeout(timeout_s)
        if not line:
            raise self._died()
        try:
            reply = messages.decode_reply(line)
        except ProtocolError as exc:
            self.kill()
            raise WorkerDied(self._proc.returncode, f"{exc}\n{self.stderr_tail()}") from None
        return Answer(reply, time.perf_counter() - started)

    def _read_line(self, deadline: float) -> bytes | None:
        """A reply line; b"" at end of stream; None at the deadline."""
        fd = self._stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return b""
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _died(self) -> WorkerDied:
        try:
            returncode = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = self._proc.returncode
        return WorkerDied(returncode, self.stderr_tail())

    def kill(self) -> None:
        """Kill the worker and its process group now, and reap it."""
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()

    def close(self, grace_s: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not within the grace period."""
        if self._proc.poll() is None:
            try:
                self._stdin.write(messages.encode(messages.Exit()))
                self._stdin.flush()
                self._proc.wait(timeout=grace_s)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        for stream in (self._stdin, self._stdout, self._stderr):
            stream.close()
