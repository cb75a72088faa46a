"""A small stdlib HTTP client for OpenAI-compatible servers.

No third-party client on purpose: the protocol checks must see exactly what the
server sent (a malformed body, a stream without ``[DONE]``), and a library that
repairs or rejects those would hide the very defects they look for.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Endpoint", "Reply", "Stream", "get", "post", "post_raw", "stream"]


@dataclass(frozen=True)
class Endpoint:
    """Where a server answers, the key it wants, and the model name to ask for."""

    url: str
    """``http://host:port`` (a trailing ``/v1`` is accepted and dropped)."""
    api_key: str | None = None
    model: str = "model"

    @property
    def base(self) -> str:
        """The URL without a trailing slash or ``/v1``."""
        url = self.url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def headers(self) -> dict[str, str]:
        """Request headers: JSON, and the bearer key when there is one."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass(frozen=True)
class Reply:
    """One HTTP answer; ``status`` 0 when none came (``error`` says why)."""

    status: int
    body: bytes = b""
    seconds: float = 0.0
    error: str | None = None

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body.decode("utf-8"))


@dataclass(frozen=True)
class Stream:
    """What a ``stream: true`` request sent back, line by line."""

    status: int
    data: tuple[str, ...] = ()
    """The payload of every ``data:`` line, in order (``[DONE]`` included)."""
    ttft_s: float | None = None
    """Seconds to the first ``data:`` line that carried text."""
    seconds: float = 0.0
    error: str | None = None
    other: tuple[str, ...] = field(default_factory=tuple)
    """Non-blank lines that were not ``data:`` lines (comments and events excluded)."""


def _connection(endpoint: Endpoint, timeout_s: float) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(endpoint.base)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.netloc, timeout=timeout_s)
    return http.client.HTTPConnection(parts.netloc, timeout=timeout_s)


def _path(endpoint: Endpoint, path: str) -> str:
    prefix = urllib.parse.urlsplit(endpoint.base).path.rstrip("/")
    return f"{prefix}{path}"


def post_raw(endpoint: Endpoint, path: str, body: bytes, timeout_s: float) -> Reply:
    """POST ``body`` as is (the protocol checks send malformed JSON on purpose)."""
    started = time.perf_counter()
    conn = _connection(endpoint, timeout_s)
    try:
        conn.request("POST", _path(endpoint, path), body=body, headers=endpoint.headers())
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, data, time.perf_counter() - started)
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, b"", time.perf_counter() - started, _describe(exc, timeout_s))
    finally:
        conn.close()


def post(endpoint: Endpoint, path: str, payload: Mapping[str, Any], timeout_s: float) -> Reply:
    """POST a JSON payload."""
    return post_raw(endpoint, path, json.dumps(payload).encode("utf-8"), timeout_s)


def get(endpoint: Endpoint, path: str, timeout_s: float) -> Reply:
    """GET a path."""
    started = time.perf_counter()
    conn = _connection(endpoint, timeout_s)
    try:
        conn.request("GET", _path(endpoint, path), headers=endpoint.headers())
        response = conn.getresponse()
        return Reply(response.status, response.read(), time.perf_counter() - started)
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, b"", time.perf_counter() - started, _describe(exc, timeout_s))
    finally:
        conn.close()


def stream(endpoint: Endpoint, path: str, payload: Mapping[str, Any], timeout_s: float) -> Stream:
    """POST with ``stream: true`` and read the server-sent events to the end."""
    started = time.perf_counter()
    body = json.dumps({**payload, "stream": True}).encode("utf-8")
    conn = _connection(endpoint, timeout_s)
    data: list[str] = []
    other: list[str] = []
    ttft: float | None = None
    try:
        conn.request("POST", _path(endpoint, path), body=body, headers=endpoint.headers())
        response = conn.getresponse()
        if response.status != 200:
            response.read()
            return Stream(response.status, seconds=time.perf_counter() - started)
        deadline = started + timeout_s
        while time.perf_counter() < deadline:
            raw = response.readline()
            if not raw:
                break
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("data:"):
                item = line[len("data:") :].strip()
                data.append(item)
                if ttft is None and item != "[DONE]" and _has_text(item):
                    ttft = time.perf_counter() - started
            elif line and not line.startswith((":", "event:", "id:", "retry:")):
                other.append(line)
        return Stream(200, tuple(data), ttft, time.perf_counter() - started, None, tuple(other))
    except (OSError, http.client.HTTPException) as exc:
        elapsed = time.perf_counter() - started
        return Stream(0, tuple(data), ttft, elapsed, _describe(exc, timeout_s), tuple(other))
    finally:
        conn.close()


def _has_text(item: str) -> bool:
    try:
        chunk = json.loads(item)
        choice = chunk["choices"][0]
        text = choice.get("text") or (choice.get("delta") or {}).get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return False
    return bool(text)


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"no answer within {timeout_s:.1f} s"
    return f"{type(exc).__name__}: {exc}"
