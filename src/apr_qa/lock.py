"""Playbook lock files: pin a playbook's bytes and selected fields by sha256.

The original tool's ``playbook.lock.yaml`` shape loads as is (entries keyed by
playbook name with ``sha256`` and ``locked_fields``); apr-qa adds per-field
hashes so a refusal can say which locked field changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from apr_qa.bounded import read_regular
from apr_qa.errors import Problem, UsageError
from apr_qa.playbook.model import Playbook
from apr_qa.playbook.source import read_source
from apr_qa.playbook.validate import check

__all__ = [
    "DEFAULT_FIELDS",
    "LOCK_VERSION",
    "MAX_LOCK_BYTES",
    "LockEntry",
    "check_locked",
    "read_lock",
    "write_lock",
]

LOCK_VERSION = 1
# A lock entry is a few hundred bytes; this is thousands of playbooks.
MAX_LOCK_BYTES = 4 * 1024 * 1024
DEFAULT_FIELDS: tuple[str, ...] = (
    "model.hf_repo",
    "model.formats",
    "test_matrix",
    "falsification_gates",
)


@dataclass(frozen=True)
class LockEntry:
    """What a lock file pins for one playbook name."""

    sha256: str
    locked_fields: tuple[str, ...]
    fields: Mapping[str, str]


def _field(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _field_hashes(playbook: Playbook, names: Sequence[str]) -> dict[str, str]:
    data = check(read_source(playbook.path)).data
    return {name: _digest(_field(data, name)) for name in names}


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def read_lock(path: Path) -> dict[str, LockEntry]:
    """Read a lock file (ours or the original's); bad shape is a usage error.

    The read is bounded (MAX_LOCK_BYTES, regular files only) and so is the YAML:
    a lock file is a few flat entries, so deep nesting is refused, not recursed into.
    """
    raw = read_regular(path, MAX_LOCK_BYTES, "lock file")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise UsageError(f"{path}: not a YAML lock file ({type(exc).__name__})") from None
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise UsageError(f"{path}: not a lock file (no 'entries' mapping)")
    out: dict[str, LockEntry] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise UsageError(f"{path}: entry '{name}' has no sha256")
        locked, fields = entry.get("locked_fields") or [], entry.get("fields") or {}
        if not _strings(locked):
            raise UsageError(f"{path}: entry '{name}': locked_fields must be a list of strings")
        if not isinstance(fields, dict) or not _strings([*fields, *fields.values()]):
            raise UsageError(f"{path}: entry '{name}': fields must map field names to hashes")
        out[str(name)] = LockEntry(entry["sha256"], tuple(locked), dict(fields))
    return out


def write_lock(
    path: Path, playbooks: Sequence[Playbook], fields: Sequence[str] = DEFAULT_FIELDS
) -> int:
    """Add or update entries for playbooks in a lock file; returns entries written."""
    entries: dict[str, Any] = {}
    if path.exists():
        entries = {
            name: {
                "sha256": e.sha256,
                "locked_fields": list(e.locked_fields),
                "fields": dict(e.fields),
            }
            for name, e in read_lock(path).items()
        }
    for playbook in playbooks:
        entries[playbook.name] = {
            "sha256": playbook.sha256,
            "locked_fields": list(fields),
            "fields": _field_hashes(playbook, fields),
        }
    text = yaml.safe_dump(
        {"lock_version": LOCK_VERSION, "entries": dict(sorted(entries.items()))}, sort_keys=False
    )
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, "utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write the lock file: {exc.strerror}") from None
    return len(playbooks)


def check_locked(
    playbook: Playbook, lock: Mapping[str, LockEntry], lock_path: Path
) -> list[Problem]:
    """Problems when a playbook is missing from the lock or changed since it was locked."""
    entry = lock.get(playbook.name)
    where = str(playbook.path)
    if entry is None:
        return [Problem(where, 1, 1, f"playbook '{playbook.name}' is not in lock file {lock_path}")]
    if entry.sha256 == playbook.sha256:
        return []
    changed: list[str] = []
    if entry.fields:
        now = _field_hashes(playbook, list(entry.fields))
        changed = [name for name, digest in entry.fields.items() if now[name] != digest]
    detail = f"locked fields changed: {', '.join(changed)}" if changed else "contents changed"
    return [
        Problem(
            where,
            1,
            1,
            f"playbook '{playbook.name}' does not match {lock_path} ({detail}; "
            f"sha256 {playbook.sha256[:12]}… != locked {entry.sha256[:12]}…); re-run `apr-qa lock` if intended",
        )
    ]
