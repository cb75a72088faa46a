"""A stand-in for the GitHub runner's side of an Action: parse a step's log into the
workflow commands the runner would act on (honouring ``::stop-commands::``), read
``$GITHUB_OUTPUT`` as the runner does, and a local HTTP server playing GitHub's
REST API for issue comments."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_COMMAND = re.compile(r"^::([A-Za-z-]+)(?: (.*?))?::(.*)$")
"""As the runner reads a command: the name, properties up to the first ``::``, the message."""


def unescape_data(text: str) -> str:
    return text.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def unescape_property(text: str) -> str:
    return unescape_data(text.replace("%3A", ":").replace("%2C", ","))


@dataclass(frozen=True)
class Command:
    name: str
    properties: dict[str, str]
    message: str
    raw: str


def parse_log(log: str) -> list[Command]:
    """The commands a runner acts on; lines after ``::stop-commands::TOKEN`` are text
    until ``::TOKEN::``."""
    commands: list[Command] = []
    stopped: str | None = None
    # The runner splits a log on LF only (str.splitlines would also split on \x1e, \u2028, ...).
    for line in (raw.removesuffix("\r") for raw in log.split("\n")):
        if stopped is not None:
            if line == f"::{stopped}::":
                stopped = None
            continue
        match = _COMMAND.match(line)
        if not match:
            continue
        name, props_text, message = match[1], match[2] or "", match[3]
        props = {}
        for item in filter(None, props_text.split(",")):
            key, _, value = item.partition("=")
            props[key.strip()] = unescape_property(value)
        if name == "stop-commands":
            stopped = message
            continue
        commands.append(Command(name, props, unescape_data(message), line))
    return commands


def read_outputs(path: Path) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` as the runner reads it: ``name=value`` or heredocs."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            out[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
            continue
        name, value = line.split("=", 1)
        out[name] = value
        i += 1
    return out


@dataclass
class FakeGitHub:
    """Issue comments of one repository, served like GitHub's REST API."""

    repository: str
    token: str
    writable: bool = True
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1000

    def handle(self, method: str, path: str, body: Any, auth: str) -> tuple[int, Any]:
        self.requests.append((method, path))
        if auth != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        prefix = f"/repos/{self.repository}"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}
        path, _, query = path[len(prefix) :].partition("?")
        if match := re.fullmatch(r"/issues/(\d+)/comments", path):
            number = int(match[1])
            thread = self.comments.setdefault(number, [])
            if method == "GET":
                params = dict(p.split("=") for p in query.split("&") if p)
                size, page = int(params.get("per_page", 30)), int(params.get("page", 1))
                return 200, thread[(page - 1) * size : page * size]
            if method == "POST":
                if not self.writable:
                    return 403, {"message": "Resource not accessible by integration"}
                self.next_id += 1
                comment = {
                    "id": self.next_id,
                    "body": body["body"],
                    "html_url": f"https://github.test/{self.repository}/pull/{number}#issuecomment-{self.next_id}",
                    "user": {"login": "github-actions[bot]"},
                }
                thread.append(comment)
                return 201, comment
        if (match := re.fullmatch(r"/issues/comments/(\d+)", path)) and method == "PATCH":
            if not self.writable:
                return 403, {"message": "Resource not accessible by integration"}
            for thread in self.comments.values():
                for comment in thread:
                    if comment["id"] == int(match[1]):
                        comment["body"] = body["body"]
                        return 200, comment
        return 404, {"message": "Not Found"}


def serve(github: FakeGitHub) -> Iterator[str]:
    """Serve ``github`` on a local port; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, answer = github.handle(
                self.command, self.path, body, self.headers.get("Authorization", "")
            )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _reply

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pull_request_event(number: int, repository: str) -> dict[str, Any]:
    """A pull_request payload as GitHub sends it (the fields a consumer reads)."""
    owner, name = repository.split("/")
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "state": "open",
            "head": {"ref": "feature", "sha": "a" * 40, "repo": {"full_name": repository}},
            "base": {"ref": "main", "sha": "b" * 40, "repo": {"full_name": repository}},
            "user": {"login": "octocat"},
        },
        "repository": {"full_name": repository, "name": name, "owner": {"login": owner}},
        "sender": {"login": "octocat"},
    }


def push_event(repository: str, branch: str = "main") -> dict[str, Any]:
    """A push payload as GitHub sends it (the fields a consumer reads)."""
    owner, name = repository.split("/")
    return {
        "ref": f"refs/heads/{branch}",
        "before": "0" * 40,
        "after": "c" * 40,
        "repository": {"full_name": repository, "name": name, "owner": {"login": owner}},
        "pusher": {"name": "octocat"},
        "sender": {"login": "octocat"},
        "commits": [],
    }
