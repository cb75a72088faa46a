"""Certification committed back: ``apr-qa certify`` on the run's summary, then one
commit of the README, registry and badges as github-actions[bot], pushed.

A push that loses a race (another job pushed first) is rebased over the new
remote head and pushed again, a bounded number of times. Nothing is committed
when the certification did not change: a new timestamp or a new tokens/s
figure for the same verdicts is not a change worth a commit (it would make one
per push, and wake every workflow watching the branch).
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from apr_qa.errors import EnvironmentProblem

__all__ = [
    "BOT_EMAIL",
    "BOT_NAME",
    "CommitResult",
    "Committed",
    "GitError",
    "certification_changed",
    "commit_certification",
]

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
PUSH_ATTEMPTS = 4
GIT_TIMEOUT_S = 120


class Committed(StrEnum):
    """What became of the certification commit."""

    PUSHED = "pushed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class CommitResult:
    """The outcome, the commit pushed, the files in it and the push attempts it took."""

    committed: Committed
    sha: str = ""
    files: tuple[Path, ...] = ()
    attempts: int = 0


class GitError(EnvironmentProblem):
    """A git command failed (exit 3): the message carries git's own words."""


class _Git:
    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            "git",
            "-c",
            f"safe.directory={self.repo}",  # the workspace belongs to the runner's user
            "-c",
            f"user.name={BOT_NAME}",
            "-c",
            f"user.email={BOT_EMAIL}",
            *args,
        ]
        try:
            done = subprocess.run(
                command,
                cwd=self.repo,
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"git {args[0]}: {exc}") from exc
        if check and done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise GitError(f"git {' '.join(args[:2])}: {detail[-1] if detail else done.returncode}")
        return done


def _volatile_free(text: str, where: str) -> set[object]:
    from apr_qa.certify.registry import parse_registry

    rows = parse_registry(text, where).rows
    return {repr(dataclasses.replace(r, last_certified="", tok_s={}, evidence="")) for r in rows}


def certification_changed(files: dict[Path, str], registry: Path) -> bool:
    """Whether the planned files change more than timestamps and throughput figures."""
    if not files:
        return False
    if registry not in files or not registry.is_file():
        return True  # a first certification, or a README or badge out of step
    before = _volatile_free(registry.read_text(encoding="utf-8"), str(registry))
    return before != _volatile_free(files[registry], str(registry))


def _branch(git: _Git, ref_name: str) -> str:
    if ref_name:
        return ref_name
    name = git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    if name == "HEAD":
        raise GitError("detached HEAD and no GITHUB_REF_NAME: no branch to push to")
    return name


def _push(git: _Git, branch: str, remote: str) -> int:
    """Push HEAD to ``branch``; on a rejection, rebase over the remote and retry."""
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        pushed = git("push", remote, f"HEAD:refs/heads/{branch}", check=False)
        if pushed.returncode == 0:
            return attempt
        if attempt == PUSH_ATTEMPTS:
            break
        git("fetch", remote, branch)
        rebased = git("rebase", "FETCH_HEAD", check=False)
        if rebased.returncode != 0:
            git("rebase", "--abort", check=False)
            raise GitError(
                f"the certification commit does not rebase over {remote}/{branch} "
                "(someone changed the same lines); rerun the workflow"
            )
    raise GitError(f"git push to {remote}/{branch} rejected {PUSH_ATTEMPTS} times; giving up")


def commit_certification(
    summaries: Sequence[Path],
    *,
    repo: Path,
    readme: Path,
    registry: Path,
    badges: Path | None,
    message: str,
    ref_name: str = "",
    remote: str = "origin",
) -> CommitResult:
    """Certify, commit what changed as the bot, and push (rebasing over a race)."""
    from apr_qa import api
    from apr_qa.certify import certify_files

    git = _Git(repo)
    git("rev-parse", "--git-dir")
    branch = _branch(git, ref_name)
    planned = api.certify(summaries, registry=registry, readme=readme, badges=badges, check=True)
    if not certification_changed(dict(planned.plan.files), registry):
        return CommitResult(Committed.UNCHANGED)
    written = certify_files(planned.plan)
    git("add", "--", *(str(p) for p in written))
    if git("diff", "--cached", "--quiet", check=False).returncode == 0:
        return CommitResult(Committed.UNCHANGED)
    git("commit", "--quiet", "-m", message)
    attempts = _push(git, branch, remote)
    sha = git("rev-parse", "HEAD").stdout.strip()
    return CommitResult(Committed.PUSHED, sha, tuple(written), attempts)
