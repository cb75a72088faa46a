"""The Action's inputs: read once from ``INPUT_*``, validated, typed.

GitHub passes an input named ``model-path`` as ``INPUT_MODEL-PATH`` (upper case,
hyphen kept); a workflow that sets the environment by hand often writes
``INPUT_MODEL_PATH``, so both spellings are accepted. Every bad value is
reported at once, each naming its input; past :func:`read_inputs` nothing
guesses a default.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from apr_qa.errors import UsageError
from apr_qa.playbook.model import Device, FailurePolicy

if TYPE_CHECKING:
    from apr_qa.plan import Shard

__all__ = [
    "DEFAULTS",
    "ActionInputs",
    "InputError",
    "read_inputs",
]

DEFAULTS: Mapping[str, str] = MappingProxyType(
    {
        "playbooks": "",
        "evidence": "",
        "model-path": "",
        "backends": "",
        "workers": "1",
        "failure-policy": "",
        "shard": "",
        "fail-below": "C",
        "baseline": "",
        "output-dir": "apr-qa-report",
        "summary": "true",
        "annotations": "true",
        "pr-comment": "true",
        "update-readme": "false",
        "readme-path": "README.md",
        "registry-path": "docs/certifications/models.csv",
        "badges-dir": "",
        "commit-message": "apr-qa: update model certification [skip ci]",
        "github-token": "",
        "hf-token": "",
        "trust-remote-code": "false",
        "verbose": "false",
    }
)
"""Every input the Action reads, with the default ``apr-qa action`` assumes when the
environment lacks it (action.yml declares the same defaults; a test holds them equal)."""

_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
MAX_WORKERS = 64


class InputError(UsageError):
    """One or more inputs cannot be used; each problem names its input (exit 2)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"input '{name}': {message}" for name, message in problems))

    def lines(self) -> list[str]:
        """One line per bad input."""
        return [f"input '{name}': {message}" for name, message in self.problems]


@dataclass(frozen=True)
class ActionInputs:
    """The validated inputs (paths relative to the workspace already resolved)."""

    playbooks: tuple[Path, ...]
    evidence: tuple[Path, ...]
    """Evidence files to merge and report instead of running (a matrix's merge job)."""
    model_path: Path | None
    backends: tuple[Device, ...]
    workers: int
    failure_policy: FailurePolicy | None
    shard: Shard | None
    fail_below: str
    baseline: Path | None
    output_dir: Path
    summary: bool
    annotations: bool
    pr_comment: bool
    update_readme: bool
    readme_path: Path
    registry_path: Path
    badges_dir: Path | None
    commit_message: str
    github_token: str
    hf_token: str
    trust_remote_code: bool
    verbose: bool


def raw_inputs(env: Mapping[str, str]) -> dict[str, str]:
    """Each known input's text: ``INPUT_NAME-WITH-HYPHENS`` first, then underscores,
    then the default. Surrounding whitespace is dropped, as GitHub's toolkit does."""
    out = {}
    for name, default in DEFAULTS.items():
        upper = name.upper()
        value = env.get(f"INPUT_{upper}")
        if value is None:
            value = env.get(f"INPUT_{upper.replace('-', '_')}")
        out[name] = (default if value is None else value).strip()
    return out


def _bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (write true or false)")


def _workers(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise ValueError(f"{text!r} is not a whole number from 1 to {MAX_WORKERS}")
    return int(text)


def _backends(text: str) -> tuple[Device, ...]:
    names = [n for n in text.replace(",", " ").split() if n]
    choices = ", ".join(d.value for d in Device)
    for name in names:
        if name not in {d.value for d in Device}:
            raise ValueError(f"unknown backend {name!r} (choose from {choices})")
    return tuple(dict.fromkeys(Device(n) for n in names))


def _policy(text: str) -> FailurePolicy | None:
    if not text:
        return None
    try:
        return FailurePolicy(text)
    except ValueError:
        choices = ", ".join(p.value for p in FailurePolicy)
        raise ValueError(f"unknown failure policy {text!r} (choose from {choices})") from None


def _shard(text: str) -> Shard | None:
    if not text:
        return None
    from apr_qa.plan import parse_shard

    try:
        return parse_shard(text)
    except UsageError as exc:
        raise ValueError(str(exc).removeprefix("--shard ")) from None


def _grade(text: str) -> str:
    from apr_qa.report import check_grade

    try:
        return check_grade(text)
    except UsageError as exc:
        raise ValueError(str(exc).removeprefix("--fail-below: ")) from None


def _token(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError("a token is one line")
    return text


def _text(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


class _Reader:
    """Parses each input, collecting every problem instead of stopping at the first."""

    def __init__(self, raw: Mapping[str, str], workspace: Path) -> None:
        self.raw = raw
        self.workspace = workspace
        self.problems: list[tuple[str, str]] = []

    def get(self, name: str, parse: Callable[[str], Any]) -> Any:
        try:
            return parse(self.raw[name])
        except ValueError as exc:
            self.problems.append((name, str(exc)))
            return None

    def path(self, name: str, *, must_exist: bool = False) -> Path | None:
        text = self.raw[name]
        if not text:
            return None
        path = self.workspace / text  # an absolute input stays absolute
        if must_exist and not path.exists():
            self.problems.append((name, f"{text}: no such file or directory"))
        return path

    def files(self, name: str) -> tuple[Path, ...]:
        """The files a multi-line list of paths and globs names, in order, once each."""
        patterns = [
            line.strip()
            for line in self.raw[name].splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        found: dict[Path, None] = {}
        for pattern in patterns:
            base, relative = self.workspace, pattern
            if Path(pattern).is_absolute():
                base, relative = Path("/"), pattern.lstrip("/")
            magic = glob.has_magic(relative)
            matches = sorted(base.glob(relative)) if magic else [base / relative]
            files = [m for m in matches if m.is_file()]
            if not files:
                self.problems.append((name, f"{pattern}: matches no file"))
            found.update(dict.fromkeys(files))
        return tuple(found)

    def sources(self) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
        """Playbooks to run, or evidence to merge: exactly one of the two."""
        playbooks, evidence = self.files("playbooks"), self.files("evidence")
        given = [n for n in ("playbooks", "evidence") if self.raw[n].strip()]
        if not given:
            self.problems.append(("playbooks", "name at least one playbook file or glob"))
        elif len(given) == 2:
            self.problems.append(
                ("evidence", "give playbooks to run or evidence to merge, not both")
            )
        return playbooks, evidence


def read_inputs(env: Mapping[str, str], workspace: Path) -> ActionInputs:
    """Validate every input (raising :class:`InputError` naming each bad one)."""
    reader = _Reader(raw_inputs(env), workspace)
    flags = {
        name: reader.get(name, _bool)
        for name in (
            "summary",
            "annotations",
            "pr-comment",
            "update-readme",
            "trust-remote-code",
            "verbose",
        )
    }
    playbooks, evidence = reader.sources()
    inputs = {
        "playbooks": playbooks,
        "evidence": evidence,
        "model_path": reader.path("model-path", must_exist=True),
        "backends": reader.get("backends", _backends),
        "workers": reader.get("workers", _workers),
        "failure_policy": reader.get("failure-policy", _policy),
        "shard": reader.get("shard", _shard),
        "fail_below": reader.get("fail-below", _grade),
        "baseline": reader.path("baseline"),
        "output_dir": reader.path("output-dir") or workspace / DEFAULTS["output-dir"],
        "summary": flags["summary"],
        "annotations": flags["annotations"],
        "pr_comment": flags["pr-comment"],
        "update_readme": flags["update-readme"],
        "readme_path": reader.get("readme-path", _text),
        "registry_path": reader.get("registry-path", _text),
        "badges_dir": reader.path("badges-dir"),
        "commit_message": reader.get("commit-message", _text),
        "github_token": reader.get("github-token", _token),
        "hf_token": reader.get("hf-token", _token),
        "trust_remote_code": flags["trust-remote-code"],
        "verbose": flags["verbose"],
    }
    if reader.problems:
        raise InputError(reader.problems)
    inputs["readme_path"] = workspace / inputs["readme_path"]
    inputs["registry_path"] = workspace / inputs["registry_path"]
    return ActionInputs(**inputs)
