"""A stdlib OpenAI-compatible test server that can misbehave on purpose.

``python misbehaving.py PORT [FAULT]`` (or :func:`start` in a thread). Clean, it
answers every request correctly with canned text. Each fault breaks exactly one
thing a server operator relies on, so the protocol checks must falsify exactly
the gate that names it:

- ``malformed-json``: a chat completion's body is not JSON (F-HTTP-002)
- ``leak``: answers end with ``<|im_end|>`` (F-HTTP-005)
- ``no-done``: a stream never sends ``data: [DONE]`` (F-HTTP-003)
- ``hang-5th``: the 5th request in flight at once never gets an answer (F-HTTP-010)
- ``die-on-large``: ``max_tokens`` above 100000 kills the server (F-HTTP-009)
- ``no-completions``: ``/v1/completions`` is missing (F-HTTP-004)
- ``no-usage``: completions carry no ``usage`` (F-HTTP-006)
- ``500-on-empty``: empty ``messages`` crash the handler, a 500 (F-HTTP-007)
- ``200-on-malformed``: a body that is not JSON is answered as a success (F-HTTP-008)
- ``random``: each answer differs, whatever the temperature (F-HTTP-011)
- ``ignore-term``: SIGTERM is ignored (F-HTTP-012, when apr-qa started the server)
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = (
    "malformed-json",
    "leak",
    "no-done",
    "hang-5th",
    "die-on-large",
    "no-completions",
    "no-usage",
    "500-on-empty",
    "200-on-malformed",
    "random",
)
ANSWER = "The answer is 4."


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, fault: str | None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.fault = fault
        self.in_flight = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/v1/models", "/health"):
            self._send(200, json.dumps({"object": "list", "data": [{"id": "canned"}]}).encode())
        else:
            self._send(404, b'{"error": "no route"}')

    def do_POST(self) -> None:
        with self.server.lock:
            self.server.in_flight += 1
            nth = self.server.in_flight
        try:
            self._post(nth)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def _post(self, nth: int) -> None:
        fault = self.server.fault
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            data = json.loads(body)
        except ValueError:
            if fault == "200-on-malformed":
                self._send(200, b'{"choices": [{"message": {"content": "ok"}}]}')
            else:
                self._send(400, b'{"error": "bad json"}')
            return
        if fault == "no-completions" and self.path == "/v1/completions":
            self._send(404, b'{"error": "no route"}')
            return
        if fault == "hang-5th":
            if nth == 5:  # the request that arrived while four others were in flight
                time.sleep(3600)
            time.sleep(0.3)  # slow enough that parallel requests overlap
        chat = self.path == "/v1/chat/completions"
        if chat and not data.get("messages"):
            status = 500 if fault == "500-on-empty" else 400
            self._send(status, b'{"error": "messages must not be empty"}')
            return
        if fault == "die-on-large" and int(data.get("max_tokens") or 0) > 100_000:
            os._exit(1)
        text = ANSWER + ("<|im_end|>" if fault == "leak" else "")
        if fault == "random":
            text = f"{ANSWER} ({random.random():.6f})"
        if data.get("stream"):
            self._stream(text, chat)
            return
        if chat and fault == "malformed-json":
            self._send(200, b'{"choices": [{"message": {"content": "The answer')
            return
        choice: dict[str, Any] = (
            {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        )
        usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
        answer: dict[str, Any] = {"choices": [choice]}
        if fault != "no-usage":
            answer["usage"] = usage
        self._send(200, json.dumps(answer).encode())

    def _stream(self, text: str, chat: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for word in text.split(" "):
            choice = {"delta": {"content": word + " "}} if chat else {"text": word + " "}
            self.wfile.write(b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n")
        if self.server.fault != "no-done":
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def start(port: int, fault: str | None = None) -> ThreadingHTTPServer:
    """A server answering on ``port`` from a daemon thread (call ``shutdown()``)."""
    server = _Server(port, fault)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    chosen = sys.argv[2] if len(sys.argv) > 2 else None
    if chosen == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _Server(int(sys.argv[1]), chosen).serve_forever()
