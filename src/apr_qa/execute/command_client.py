"""A cell whose worker is a command line: one process per request.

:class:`CommandClient` speaks the worker protocol the cell already drives
(``Load``, ``Generate``), so a cell run through a ``runtimes`` entry gets G1,
G2, G3, timeouts and interrupt handling from the same code as every other cell,
and its answers are judged by the same oracles. ``Load`` checks that the
artifact is there (the program is checked before the cell is planned to run);
each ``Generate`` writes the prompt to a temporary file, runs the command
template as an argument list (no shell), and reads the answer out of stdout.

Each invocation runs in its own session (process group): past its deadline the
whole group is SIGKILLed and reaped, so a hung runtime and whatever it started
are gone (:class:`~apr_qa.execute.client.WorkerTimeout`); a non-zero exit or a
death by signal is a crash (:class:`~apr_qa.execute.client.WorkerDied`) with
its stderr tail; stdout with no answer where ``output`` says is a refusal the
oracles never see, and an answer that is garbage is judged like any other.

A command line cannot be told to go on past the model's end: a request's
``min_tokens`` is ignored (the profile says so in its records). It also reports
no token ids: a generation's ``token_ids`` holds one
``-1`` per whitespace-separated word of the answer (an estimate, so that lengths
and rates are not zero), and its time to first token is the whole invocation.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from apr_qa.backends import Generation, Vocab
from apr_qa.execute.client import Answer, WorkerDied, WorkerTimeout, answer_directly
from apr_qa.execute.messages import (
    Failed,
    Generate,
    Generated,
    Loaded,
    Request,
)
from apr_qa.runtimes import RuntimeSpec, extract, render, runtime_specs

if TYPE_CHECKING:
    from apr_qa.execute.cell import CellJob

__all__ = ["STDOUT_LIMIT_BYTES", "CommandClient", "CommandSpawner", "command_spawner"]

STDOUT_LIMIT_BYTES = 1 << 20
"""The most of an invocation's stdout that is read (a runaway runtime can write more)."""
STDERR_TAIL_BYTES = 2000


def _tail(stream: IO[bytes], limit: int) -> str:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - limit))
    return stream.read().decode("utf-8", "replace")


class CommandClient:
    """Runs one format's command line for one cell's requests."""

    def __init__(self, spec: RuntimeSpec, model: str, device: str) -> None:
        self.spec = spec
        self.model = model
        self.device = device
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The process group of the invocation running now (None between requests)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def alive(self) -> bool:
        """A command line has no process between requests: alive until closed."""
        return not self._closed

    def request(self, request: Request, timeout_s: float) -> Answer:
        """Honour one worker request by running the command line."""
        return answer_directly(
            request,
            timeout_s,
            load=self._load,
            generate=self._generate,
            who="a command-line runtime",
        )

    def _load(self) -> Loaded | Failed:
        started = time.perf_counter()
        if not Path(self.model).exists():
            return Failed(f"no {self.spec.format} artifact at {self.model}")
        return Loaded(time.perf_counter() - started, Vocab(None, None, ()))

    def _generate(self, request: Generate, timeout_s: float) -> Generated | Failed:
        chat = request.messages is not None
        template = self.spec.chat_command if chat else self.spec.command
        if template is None:
            return Failed(f"runtimes.{self.spec.format} has no chat_command for chat requests")
        deadline = min(timeout_s, self.spec.timeout_s or timeout_s)
        with tempfile.TemporaryDirectory(prefix="apr-qa-runtime-") as tmp:
            prompt_file = Path(tmp) / "prompt.txt"
            messages = [dict(m) for m in request.messages or ()]
            users = [m.get("content", "") for m in messages if m.get("role") == "user"]
            prompt = (users[-1] if users else "") if chat else (request.prompt or "")
            prompt_file.write_text(prompt, "utf-8")
            messages_file = Path(tmp) / "messages.json"
            messages_file.write_text(json.dumps(messages), "utf-8")
            argv = render(
                template,
                {
                    "model": self.model,
                    "prompt_file": str(prompt_file),
                    "messages_file": str(messages_file),
                    "max_tokens": str(request.max_tokens),
                    "seed": str(request.seed),
                    "temperature": repr(float(request.temperature)),
                    "device": self.device,
                    "format": self.spec.format,
                },
            )
            stdout, seconds = self._invoke(argv, deadline)
        try:
            text = extract(self.spec, stdout)
        except ValueError as exc:
            return Failed(f"the runtime's output has no answer: {exc}; stdout: {stdout[:300]!r}")
        tokens = len(text.split())
        return Generated(
            Generation(
                text=text,
                token_ids=(-1,) * tokens,
                prompt_tokens=0,
                ttft_s=seconds,
                duration_s=seconds,
                tok_per_s=tokens / seconds if tokens > 1 and seconds > 0 else 0.0,
                finish_reason="stop",
            )
        )

    def _invoke(self, argv: list[str], deadline_s: float) -> tuple[str, float]:
        """Run one invocation to its end; its stdout and how long it took."""
        started = time.perf_counter()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            with self._lock:
                if self._closed:
                    raise WorkerDied(None, "the runtime was stopped")
                try:
                    self._proc = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,  # its own group: a kill takes its children
                    )
                except OSError as exc:
                    raise WorkerDied(None, f"the runtime could not be started: {exc}") from None
            proc = self._proc
            try:
                code = proc.wait(timeout=deadline_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise WorkerTimeout(deadline_s) from None
            finally:
                # Whatever the runtime left running in its group goes with it.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            seconds = time.perf_counter() - started
            if code != 0:
                raise WorkerDied(code, _tail(err, STDERR_TAIL_BYTES))
            out.seek(0)
            return out.read(STDOUT_LIMIT_BYTES).decode("utf-8", "replace"), seconds

    def kill(self) -> None:
        """SIGKILL the running invocation's process group, and reap it."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        """No further invocation starts; one still running is killed."""
        with self._lock:
            self._closed = True
        self.kill()


@dataclass
class CommandSpawner:
    """Makes a cell's command clients (the cell calls it again after a hang or a crash)."""

    spec: RuntimeSpec
    model: str
    device: str

    def __call__(self, kind: str) -> CommandClient:
        """A new client for the cell."""
        return CommandClient(self.spec, self.model, self.device)


def command_spawner(job: CellJob) -> CommandSpawner:
    """The spawner of a cell that runs through its format's ``runtimes`` entry."""
    spec = runtime_specs(job.playbook.sections)[job.cell.format or "-"]
    return CommandSpawner(spec, job.path, job.device)
