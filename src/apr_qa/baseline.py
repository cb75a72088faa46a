"""An earlier run, read from whatever a publisher kept of it.

A run can be named by its evidence file, its summary.json, or its output
directory; a directory of downloaded shard artifacts (``shard-1/evidence.jsonl``,
every ``evidence*.jsonl`` below it) is one run too, merged by key exactly as ``apr-qa report`` merges it. A
summary.json with the evidence beside it reads the evidence; alone, it gives
each model's score but no per-check outcome, and says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apr_qa.bounded import JsonOutOfBounds, loads_bounded
from apr_qa.compare import ModelView, view_of
from apr_qa.errors import UsageError
from apr_qa.evidence import Record

__all__ = ["PriorRun", "read_run"]

EVIDENCE_NAME = "evidence.jsonl"
SUMMARY_NAME = "summary.json"
MAX_SUMMARY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PriorRun:
    """A run read back: its merged records (None from a summary.json alone) and scores."""

    source: Path
    files: tuple[Path, ...]
    sha256: str
    """Of the files read, in order: a re-decision can tell the baseline changed."""
    records: tuple[Record, ...] | None
    views: tuple[ModelView, ...]
    warnings: tuple[str, ...]


def _digest(files: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _evidence_files(path: Path) -> list[Path]:
    if path.is_dir():
        direct = path / EVIDENCE_NAME
        if direct.is_file():
            return [direct]
        # Shard artifacts downloaded side by side; not any JSONL (a golden file is one too).
        return sorted(p for p in path.rglob("evidence*.jsonl") if p.is_file())
    if path.name == SUMMARY_NAME or path.suffix == ".json":
        beside = path.with_name(EVIDENCE_NAME)
        return [beside] if beside.is_file() else []
    return [path]


def _summary_views(path: Path) -> tuple[ModelView, ...]:
    if path.stat().st_size > MAX_SUMMARY_BYTES:
        raise UsageError(f"{path}: larger than {MAX_SUMMARY_BYTES} bytes; not a summary.json")
    try:
        data: Any = loads_bounded(path.read_text(encoding="utf-8", errors="replace"))
        views = []
        for m in data["models"]:
            categories = {
                str(c["category"]): (float(c["points"]) if c["assessed"] else None)
                for c in m["categories"]
            }
            views.append(
                ModelView(
                    str(m["model"]), int(m["mqs"]), str(m["grade"]), str(m["status"]), categories
                )
            )
    except (json.JSONDecodeError, JsonOutOfBounds, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: not an apr-qa summary.json ({exc})") from None
    return tuple(views)


def read_run(path: Path) -> PriorRun:
    """Read one earlier run from ``path`` (evidence.jsonl, summary.json or a directory)."""
    from apr_qa.evidence import read_evidence
    from apr_qa.merge import merge
    from apr_qa.score import score

    if not path.exists():
        raise UsageError(f"{path}: no such run (give an evidence.jsonl, summary.json or directory)")
    files = _evidence_files(path)
    if files:
        read = read_evidence(files)
        merged = merge(read.records)
        views = tuple(view_of(m) for m in score(merged.records).models)
        warnings = (*read.warnings, *merged.warnings)
        return PriorRun(path, tuple(files), _digest(files), merged.records, views, warnings)
    summary = path / SUMMARY_NAME if path.is_dir() else path
    if not summary.is_file():
        raise UsageError(f"{path}: holds neither {EVIDENCE_NAME} nor {SUMMARY_NAME}")
    note = f"{summary}: no {EVIDENCE_NAME} beside it; scores compared, checks not"
    return PriorRun(path, (summary,), _digest([summary]), None, _summary_views(summary), (note,))
