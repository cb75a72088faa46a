"""A serve cell's worker is its server: the same requests, answered over HTTP.

:class:`ServerClient` speaks the worker protocol the cell already drives
(``Load``, ``Generate``), so a serve cell gets G1/G2/G3, timeouts, restarts and
interrupt handling from the same code as run and chat cells. ``Load`` starts the
server (or waits for ``serve.url``); ``Generate`` posts to
``/v1/chat/completions`` (messages) or ``/v1/completions`` (a raw prompt). A
request past its deadline kills a server we started (the cell restarts it);
a server that died is a crash, with its output's tail.

HTTP carries no token ids: a generation's ``token_ids`` holds one ``-1`` per
token the server's ``usage`` counted (so lengths and rates stay true), and its
time to first token is the whole request (these requests do not stream; the
profile's TTFT over a server is measured on streamed requests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apr_qa.backends import Generation, Vocab
from apr_qa.execute.client import Answer, WorkerDied, WorkerTimeout, answer_directly
from apr_qa.execute.messages import Failed, Generate, Generated, Loaded, Request
from apr_qa.serve.http import Endpoint, Reply, get, post
from apr_qa.serve.launch import HOST, Server, Shutdown, StartFailed, free_port, server_command
from apr_qa.serve.spec import ServeSpec

if TYPE_CHECKING:
    from apr_qa.execute.cell import CellRunner

__all__ = ["SHUTDOWN_GATE", "ServerClient", "ServerSpawner", "generation_of", "record_shutdown"]

SHUTDOWN_GATE = "F-HTTP-012"


def generation_of(reply: Reply, chat: bool) -> Generation | str:
    """The generation in a 200 answer, or why there is none."""
    try:
        data = reply.json()
        choice = data["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"the server's answer is not a completion ({type(exc).__name__}: {exc})"
    if not isinstance(text, str):
        return "the server's answer has no text"
    usage = data.get("usage") if isinstance(data, dict) else None
    counted = usage.get("completion_tokens") if isinstance(usage, dict) else None
    tokens = counted if isinstance(counted, int) and counted >= 0 else int(bool(text))
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    seconds = max(reply.seconds, 1e-9)
    return Generation(
        text=text,
        token_ids=(-1,) * tokens,
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        ttft_s=seconds,
        duration_s=seconds,
        tok_per_s=tokens / seconds if tokens > 1 else 0.0,
        finish_reason=str(choice.get("finish_reason") or "stop"),
    )


class ServerClient:
    """One server for one cell: started by ``Load``, stopped by ``close``."""

    def __init__(
        self, spec: ServeSpec, fmt: str, model: str, device: str, backend: str | None = None
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.format = fmt
        self.model = model
        self.device = device
        self.server: Server | None = None
        self.endpoint: Endpoint | None = None
        self.shutdown: Shutdown | None = None
        """How the server went when closed (None: not ours, or never started)."""
        self.killed = False
        """Killed after a hang: its shutdown says nothing about SIGTERM."""

    @property
    def pid(self) -> int | None:
        """The process group of a server we started."""
        return self.server.pid if self.server is not None else None

    @property
    def owned(self) -> bool:
        """Whether apr-qa started this server (and so stops it)."""
        return self.spec.url is None

    def alive(self) -> bool:
        """Whether the server we started still runs (a ``url`` server: assumed)."""
        return self.server.alive() if self.server is not None else self.spec.url is not None

    def request(self, request: Request, timeout_s: float) -> Answer:
        """Honour one worker request over HTTP."""
        return answer_directly(
            request, timeout_s, load=self._load, generate=self._generate, who="a server"
        )

    def _load(self) -> Loaded | Failed:
        from apr_qa.serve.launch import wait_ready

        started = time.perf_counter()
        key = self.spec.api_key()
        if self.spec.url is not None:
            self.endpoint = Endpoint(self.spec.url, key, self.spec.model or "model")
            ready, why = wait_ready(self.endpoint, self.spec.ready_timeout_s)
        else:
            port = self.spec.port or free_port()
            try:
                command = server_command(
                    self.spec, self.format, self.model, self.device, port, self.backend
                )
            except StartFailed as exc:
                return Failed(str(exc))
            self.server = Server(command)
            self.endpoint = Endpoint(f"http://{HOST}:{port}", key, self.spec.model or "model")
            ready, why = wait_ready(self.endpoint, self.spec.ready_timeout_s, alive=self.server)
            if not ready:
                tail = self.server.stderr_tail().strip()[-600:]
                self.server.kill()
                return Failed(f"the server did not start: {why}; output tail: {tail}")
        if not ready:
            return Failed(f"the server at {self.spec.url} is not ready: {why}")
        self._name_model()
        return Loaded(time.perf_counter() - started, Vocab(None, None, ()))

    def _name_model(self) -> None:
        """Ask for the model the server lists when the playbook names none."""
        assert self.endpoint is not None
        if self.spec.model:
            return
        try:
            name = get(self.endpoint, "/v1/models", 10.0).json()["data"][0]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            return
        self.endpoint = Endpoint(self.endpoint.url, self.endpoint.api_key, str(name))

    def _generate(self, request: Generate, timeout_s: float) -> Generated | Failed:
        if self.endpoint is None:
            return Failed("no server is ready")
        chat = request.messages is not None
        payload: dict[str, Any] = {
            "model": self.endpoint.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        if request.min_tokens > 0:
            # llama-cpp-python's server and vLLM take it; sent only when asked, so every
            # other request stays plain OpenAI for a strict ``url`` server.
            payload["min_tokens"] = request.min_tokens
        if chat:
            payload["messages"] = [dict(m) for m in request.messages or ()]
        else:
            payload["prompt"] = request.prompt or ""
        path = "/v1/chat/completions" if chat else "/v1/completions"
        reply = post(self.endpoint, path, payload, timeout_s)
        if reply.status == 0:
            if reply.error and reply.error.startswith("no answer within"):
                self.kill()
                raise WorkerTimeout(timeout_s)
            if self.server is not None and not self.server.alive():
                raise WorkerDied(self.server.returncode(), self.server.stderr_tail())
            return Failed(f"no answer from the server: {reply.error}")
        if reply.status != 200:
            text = reply.body.decode("utf-8", "replace")[:300]
            overflow = reply.status == 400 and "context" in text.lower()
            return Failed(f"HTTP {reply.status}: {text}", "context" if overflow else "error")
        gen = generation_of(reply, chat)
        return Failed(gen) if isinstance(gen, str) else Generated(gen)

    def kill(self) -> None:
        """Kill a server we started, now (a ``url`` server is never touched)."""
        if self.server is not None:
            self.killed = True
            self.server.kill()

    def close(self) -> None:
        """Stop a server we started: SIGTERM, a grace period, then SIGKILL."""
        if self.server is not None and self.shutdown is None:
            self.shutdown = self.server.stop(self.spec.stop_grace_s)


@dataclass
class ServerSpawner:
    """Makes a cell's server clients and remembers the last (whose shutdown is judged)."""

    spec: ServeSpec
    format: str
    model: str
    device: str
    backend: str | None = None
    """Forces apr-qa's own server over this backend (``fake`` in engine tests)."""
    last: ServerClient | None = None

    def __call__(self, kind: str) -> ServerClient:
        """A new client (the cell calls this again after a hang or a crash)."""
        self.last = ServerClient(self.spec, self.format, self.model, self.device, self.backend)
        return self.last


def record_shutdown(session: CellRunner, client: ServerClient) -> None:
    """F-HTTP-012: the server we started went on SIGTERM within the grace period."""
    from apr_qa.evidence import Outcome

    if not client.owned:
        reason = "not decided: apr-qa did not start the server at serve.url, so never stops it"
        session.record(SHUTDOWN_GATE, Outcome.SKIPPED, reason)
        return
    down = client.shutdown
    if down is None or client.killed:
        why = "it was killed after a hang" if client.killed else "it never started"
        session.record(SHUTDOWN_GATE, Outcome.SKIPPED, f"not decided: {why}")
        return
    if session.interrupted_run():
        return
    metrics = {"shutdown_s": down.seconds}
    if down.graceful:
        reason = f"exited ({down.returncode}) {down.seconds:.1f} s after SIGTERM"
        session.record(SHUTDOWN_GATE, Outcome.CORROBORATED, reason, metrics=metrics)
    else:
        reason = "still running when the grace period after SIGTERM ended; killed"
        if down.returncode is not None:
            reason = f"had already exited ({down.returncode}) before SIGTERM"
        session.record(SHUTDOWN_GATE, Outcome.FALSIFIED, reason, metrics=metrics)
