"""Registry rows from summary.json files, and the rule that merges them in.

A summary is validated against its schema before anything is taken from it; a
model's row takes its facts (family, parameters, size) from the summary, or, for
evidence that carries none, keeps what the registry already says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from apr_qa.certify.registry import (
    CATEGORY_COLUMNS,
    NO_GRADE,
    NOT_ASSESSED,
    NOT_RUN,
    TOK_S_PREFIX,
    CertifyError,
    Row,
    row_problems,
)
from apr_qa.score import Status

__all__ = ["Incoming", "Update", "apply", "read_summary", "rows_from_summary", "utc_stamp"]

_VERDICTS = {"passed": "pass", "failed": "fail", "not assessed": NOT_RUN}


def utc_stamp(text: str) -> str:
    """An ISO-8601 time (any offset) as the registry writes it: ``YYYY-MM-DDTHH:MM:SSZ``."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_summary(path: Path) -> dict[str, Any]:
    """A summary.json, validated against the schema it was written with."""
    from jsonschema import Draft202012Validator

    from apr_qa.report.summary import summary_schema

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CertifyError([f"{path}: summary not found"]) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CertifyError([f"{path}: not a summary.json ({exc})"]) from None
    error = next(iter(Draft202012Validator(summary_schema()).iter_errors(data)), None)
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "summary"
        raise CertifyError([f"{path}: not a valid summary.json ({at}: {error.message})"])
    document: dict[str, Any] = data
    return document


def _points(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


class Incoming(NamedTuple):
    """A row taken from a summary, and whether its family was declared by the playbook
    (else it is the architecture, and a family the registry already names wins)."""

    row: Row
    declared_family: bool


def _row(model: Mapping[str, Any], evidence: str, now: datetime) -> Row:
    facts = model.get("facts") or {}
    pending = model["status"] == Status.PENDING
    points = {}
    for category in model["categories"]:
        column = category["category"].lower()
        points[column] = _points(category["points"]) if category["assessed"] else NOT_ASSESSED
    playbooks = model["playbooks"]
    stamp = model.get("evaluated_at")
    return Row(
        model=model["model"],
        family=facts.get("family", ""),
        parameters=str(facts["parameters"]) if "parameters" in facts else "",
        size_category=facts.get("size_category", ""),
        status=model["status"],
        mqs=str(model["mqs"]),
        grade=NO_GRADE if pending else model["grade"],
        gateways={g["gateway"].lower(): _VERDICTS[g["verdict"]] for g in model["gateways"]},
        points={c: points[c] for c in CATEGORY_COLUMNS},
        playbook=";".join(p["path"] or "" for p in playbooks),
        playbook_sha256=";".join(p["sha256"] or "" for p in playbooks if p["sha256"]),
        evidence=evidence,
        last_certified=utc_stamp(stamp) if stamp else now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        tok_s={
            f"{TOK_S_PREFIX}{_slug(t['format'])}_{_slug(t['backend'])}": _points(t["tok_per_s"])
            for t in model.get("throughput", ())
        },
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower()) or "x"


def rows_from_summary(path: Path, now: datetime) -> list[Incoming]:
    """One row per model of the summary at ``path``; its evidence is the
    ``evidence.jsonl`` beside it (where ``apr-qa run`` writes both)."""
    document = read_summary(path)
    beside = path.parent / "evidence.jsonl"
    evidence = (beside if beside.is_file() else path).as_posix()
    out = []
    for model in document["models"]:
        facts = model.get("facts") or {}
        declared = bool(facts) and facts["family"] != facts["architecture"]
        row = _row(model, evidence, now)
        # Checked as the registry will check it on its next read, so a summary edited
        # by hand into a contradiction never reaches the README.
        problems = row_problems(row)
        if problems:
            raise CertifyError([f"{path}: {row.model}: {p}" for p in problems])
        out.append(Incoming(row, declared))
    return out


@dataclass(frozen=True)
class Update:
    """What applying summaries did (one line each): rows added, replaced, and rows
    kept because the registry's certification is newer than the summary's."""

    added: tuple[str, ...]
    replaced: tuple[str, ...]
    kept: tuple[str, ...]


def _keep_facts(new: Row, old: Row, declared_family: bool) -> Row:
    """Evidence without facts (a fake backend, an older apr-qa) keeps the registry's
    size; a family the playbook did not declare yields to the registry's."""
    if not new.parameters:
        new = replace(new, parameters=old.parameters, size_category=old.size_category)
    if old.family and not declared_family:
        new = replace(new, family=old.family)
    # Unknown columns are the maintainer's and stay; a throughput belongs to the run
    # that measured it, so an unprofiled newer run leaves it empty.
    return replace(new, extra=old.extra)


def apply(rows: Sequence[Row], incoming: Sequence[Incoming]) -> tuple[list[Row], Update]:
    """Merge ``incoming`` rows into ``rows`` by (model, playbook): a newer or equally new
    certification replaces the row; an older one never does. Unknown columns stay."""
    table = {r.key: r for r in rows}
    added: list[str] = []
    replaced: list[str] = []
    kept: list[str] = []
    for new, declared in incoming:
        old = table.get(new.key)
        placeholder = table.get((new.model, ""))
        if old is None and placeholder is not None and not placeholder.last_certified:
            # A Pending row registered by hand (no playbook yet) is the same model.
            old = table.pop(placeholder.key)
        label = f"{new.model} ({new.playbook or 'no playbook'})"
        if old is not None and old.last_certified > new.last_certified:
            kept.append(f"{label}: the registry holds a newer certification")
            continue
        if old is not None:
            new = _keep_facts(new, old, declared)
            replaced.append(label)
        else:
            added.append(label)
        table[new.key] = new
    return list(table.values()), Update(tuple(added), tuple(replaced), tuple(kept))
