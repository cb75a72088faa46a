"""apr-qa's own OpenAI-compatible server over any apr-qa backend.

``python -m apr_qa.serve.app --backend transformers --model DIR --port P``.

Why our own: ``transformers serve`` needs the ``transformers[serving]`` extra
(FastAPI, uvicorn) and loads models on demand from the Hub by name; this one is
stdlib (``http.server``), loads the one artifact it is given, and answers with
the same backend code the run and chat cells use, so a serve cell differs from
a chat cell only by HTTP. Endpoints: ``GET /health``, ``GET /v1/models``,
``POST /v1/completions``, ``POST /v1/chat/completions`` (``stream: true`` gives
SSE ``data:`` chunks ending with ``data: [DONE]``). Requests are answered in
parallel threads but generate one at a time (a backend is not thread-safe).
``max_tokens`` is bounded by ``--max-tokens-cap`` (a larger one gives a bounded
answer, ``finish_reason: length``); ``min_tokens`` (as llama-cpp-python's server
and vLLM take it) suppresses end of generation until that many tokens came out;
a bad request is a 400, never a crash.
SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apr_qa.backends import Backend, Generation

__all__ = ["BadRequest", "OpenAIServer", "main", "parse_request"]


class BadRequest(ValueError):
    """The request is not one the API accepts (answered with 400)."""


def parse_request(body: bytes, chat: bool, cap: int) -> dict[str, Any]:
    """The validated fields of a completion request; :class:`BadRequest` otherwise."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    max_tokens = data.get("max_tokens", data.get("max_completion_tokens", 16))
    if max_tokens is None:
        max_tokens = cap
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise BadRequest("max_tokens must be a non-negative integer")
    temperature = data.get("temperature", 1.0)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool):
        raise BadRequest("temperature must be a number")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise BadRequest("seed must be an integer")
    min_tokens = data.get("min_tokens", 0)
    if not isinstance(min_tokens, int) or isinstance(min_tokens, bool) or min_tokens < 0:
        raise BadRequest("min_tokens must be a non-negative integer")
    fields: dict[str, Any] = {
        "max_tokens": min(max_tokens, cap),
        "min_tokens": min(min_tokens, max_tokens, cap),
        "temperature": float(temperature),
        "seed": seed,
        "stream": bool(data.get("stream", False)),
        "prompt": None,
        "messages": None,
    }
    if chat:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list")
        for m in messages:
            if not (isinstance(m, dict) and isinstance(m.get("role"), str)):
                raise BadRequest("each message needs a role")
            if not isinstance(m.get("content"), str):
                raise BadRequest("each message needs a string content")
        fields["messages"] = tuple({"role": m["role"], "content": m["content"]} for m in messages)
    else:
        prompt = data.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("prompt must be a string")
        fields["prompt"] = prompt
    return fields


class OpenAIServer(ThreadingHTTPServer):
    """The HTTP server: one loaded backend, generation serialized by a lock."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: Backend, name: str, cap: int) -> None:
        super().__init__(address, _Handler)
        self.backend = backend
        self.model_name = name
        self.cap = cap
        self.lock = threading.Lock()

    def generate(self, fields: Mapping[str, Any]) -> Generation:
        """One generation, one at a time."""
        with self.lock:
            return self.backend.generate(
                prompt=fields["prompt"],
                messages=fields["messages"],
                max_tokens=fields["max_tokens"],
                temperature=fields["temperature"],
                seed=fields["seed"],
                min_tokens=fields["min_tokens"],
            )


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the access log would only fill the crash tail."""

    def _send(self, status: int, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def do_GET(self) -> None:
        """Health and the model list."""
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        elif self.path == "/v1/models":
            model = {"id": self.server.model_name, "object": "model", "owned_by": "apr-qa"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        """Completions and chat completions."""
        chat = self.path == "/v1/chat/completions"
        if not chat and self.path != "/v1/completions":
            self._error(404, f"no route {self.path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            fields = parse_request(body, chat, self.server.cap)
        except BadRequest as exc:
            self._error(400, str(exc))
            return
        from apr_qa.backends import ContextOverflow

        try:
            gen = self.server.generate(fields)
        except ContextOverflow as exc:
            self._error(400, f"context length exceeded: {exc.detail}")
            return
        except Exception as exc:  # the model failing is the client's answer, not our crash
            self._error(500, f"{type(exc).__name__}: {exc}")
            return
        if fields["stream"]:
            self._stream(gen, chat)
        else:
            self._send(200, _completion(gen, chat, self.server.model_name))

    def _stream(self, gen: Generation, chat: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        name = self.server.model_name
        ident = f"cmpl-{uuid.uuid4().hex[:12]}"
        for piece in _pieces(gen.text):
            choice: dict[str, Any] = (
                {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                if chat
                else {"index": 0, "text": piece, "finish_reason": None}
            )
            self._event(_chunk(ident, name, chat, choice))
        last: dict[str, Any] = (
            {"index": 0, "delta": {}, "finish_reason": gen.finish_reason}
            if chat
            else {"index": 0, "text": "", "finish_reason": gen.finish_reason}
        )
        self._event(_chunk(ident, name, chat, last))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _event(self, payload: Mapping[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode("utf-8") + b"\n\n")
        self.wfile.flush()


def _pieces(text: str) -> Iterator[str]:
    """The text in word-sized pieces (generation already finished; the backends do
    not stream, so time to first token over this server is the whole generation)."""
    start = 0
    for i, ch in enumerate(text):
        if ch == " " and i > start:
            yield text[start:i]
            start = i
    if start < len(text):
        yield text[start:]


def _chunk(ident: str, name: str, chat: bool, choice: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": name,
        "choices": [choice],
    }


def _completion(gen: Generation, chat: bool, name: str) -> dict[str, Any]:
    choice: dict[str, Any] = (
        {"index": 0, "message": {"role": "assistant", "content": gen.text}}
        if chat
        else {"index": 0, "text": gen.text}
    )
    choice["finish_reason"] = gen.finish_reason
    completion = len(gen.token_ids)
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": name,
        "choices": [choice],
        "usage": {
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": gen.prompt_tokens + completion,
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Load the artifact and serve until SIGTERM or SIGINT."""
    from apr_qa.backends import create_backend

    parser = argparse.ArgumentParser(prog="python -m apr_qa.serve.app", description=__doc__)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default=None, help="the model id /v1/models lists")
    parser.add_argument("--max-tokens-cap", type=int, default=256)
    args = parser.parse_args(argv)
    backend = create_backend(args.backend)
    backend.load(args.model, args.device)
    server = OpenAIServer(
        (args.host, args.port), backend, args.name or args.model.name, args.max_tokens_cap
    )

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever to return: call it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        backend.close()


if __name__ == "__main__":
    main()
