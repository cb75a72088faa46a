"""The pull-request comment: one per pull request, found again by a hidden marker
and edited in place on every later run, through GitHub's REST API.

A fork's pull request gets a read-only token: GitHub answers 403 to the write,
and the Action says so in a notice instead of failing a job whose checks passed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from apr_qa.report.markdown import COMMENT_MARKER

__all__ = ["CommentResult", "Posted", "upsert_comment"]

PAGE_SIZE = 100
MAX_PAGES = 30
"""At most 3,000 comments are searched for the marker (a bot-heavy PR stays bounded)."""
TIMEOUT_S = 30.0


class Posted(StrEnum):
    """What became of the comment."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REFUSED = "refused"
    """The token may not write (a fork's pull request): a notice, not a failure."""
    FAILED = "failed"
    """The API could not be reached or answered an error: a warning."""


@dataclass(frozen=True)
class CommentResult:
    """The outcome, the comment's URL when there is one, and why when there is not."""

    posted: Posted
    url: str = ""
    reason: str = ""


class _Api:
    def __init__(self, api_url: str, repository: str, token: str) -> None:
        self.base = f"{api_url.rstrip('/')}/repos/{repository}"
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", "apr-qa-action")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read() or b"null")


def _find(api: _Api, number: int) -> dict[str, Any] | None:
    for page in range(1, MAX_PAGES + 1):
        batch = api.call("GET", f"/issues/{number}/comments?per_page={PAGE_SIZE}&page={page}")
        if not isinstance(batch, list):
            return None
        for comment in batch:
            if isinstance(comment, dict) and COMMENT_MARKER in str(comment.get("body", "")):
                return comment
        if len(batch) < PAGE_SIZE:
            return None
    return None


def _why(exc: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(exc.read() or b"{}").get("message", "")
    except (ValueError, AttributeError, OSError):
        message = ""
    return f"HTTP {exc.code}" + (f": {message}" if message else "")


def upsert_comment(
    *, api_url: str, repository: str, number: int, token: str, body: str
) -> CommentResult:
    """Create the marked comment on pull request ``number``, or edit the one there."""
    if COMMENT_MARKER not in body:
        body = f"{COMMENT_MARKER}\n{body}"
    if not token:
        return CommentResult(Posted.REFUSED, reason="no github-token given")
    api = _Api(api_url, repository, token)
    try:
        existing = _find(api, number)
        if existing is None:
            made = api.call("POST", f"/issues/{number}/comments", {"body": body})
            return CommentResult(Posted.CREATED, url=str(made.get("html_url", "")))
        url = str(existing.get("html_url", ""))
        if existing.get("body") == body:
            return CommentResult(Posted.UNCHANGED, url=url)
        api.call("PATCH", f"/issues/comments/{existing['id']}", {"body": body})
        return CommentResult(Posted.UPDATED, url=url)
    except urllib.error.HTTPError as exc:
        why = _why(exc)
        if exc.code in (401, 403, 404):
            return CommentResult(Posted.REFUSED, reason=f"the token may not comment ({why})")
        return CommentResult(Posted.FAILED, reason=why)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return CommentResult(Posted.FAILED, reason=str(getattr(exc, "reason", exc)))
