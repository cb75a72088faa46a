"""The workflow run the Action is in, from the runner's ``GITHUB_*`` environment and
the event payload it points at."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GitHubContext", "read_context"]


@dataclass(frozen=True)
class GitHubContext:
    """What the Action needs to know about the run it is part of."""

    event_name: str
    workspace: Path
    repository: str
    api_url: str
    server_url: str
    run_id: str
    ref_name: str
    sha: str
    pull_number: int | None
    """The pull request's number on pull_request(_target) events."""
    step_summary: Path | None
    output: Path | None
    runner_temp: Path | None
    actor: str

    @property
    def is_pull_request(self) -> bool:
        """A pull_request or pull_request_target event with a number."""
        return self.pull_number is not None

    @property
    def run_url(self) -> str:
        """This workflow run's page (empty outside Actions)."""
        if not (self.repository and self.run_id):
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"


def _payload(path: str) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def read_context(env: Mapping[str, str]) -> GitHubContext:
    """The run's context; outside Actions, the current directory and no event."""
    event_name = env.get("GITHUB_EVENT_NAME", "")
    payload = _payload(env.get("GITHUB_EVENT_PATH", ""))
    number = None
    if event_name in ("pull_request", "pull_request_target"):
        pull = payload.get("pull_request") or {}
        raw = pull.get("number", payload.get("number"))
        number = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    return GitHubContext(
        event_name=event_name,
        workspace=Path(env.get("GITHUB_WORKSPACE") or Path.cwd()),
        repository=env.get("GITHUB_REPOSITORY", ""),
        api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        server_url=(env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
        run_id=env.get("GITHUB_RUN_ID", ""),
        ref_name=env.get("GITHUB_REF_NAME", ""),
        sha=env.get("GITHUB_SHA", ""),
        pull_number=number,
        step_summary=_path(env.get("GITHUB_STEP_SUMMARY")),
        output=_path(env.get("GITHUB_OUTPUT")),
        runner_temp=_path(env.get("RUNNER_TEMP")),
        actor=env.get("GITHUB_ACTOR", ""),
    )
