"""Annotations: each of the worst failures as an ``::error`` on the playbook line
that asked for it.

A scenario's failure points at the scenario (the loader keeps every value's
file:line:col). A check with no scenario points at the playbook key that
governs it: ``gates.g0_integrity`` for a G0 failure, its entry in
``falsification_gates``, else ``model``. GitHub shows at most 10 error
annotations per step, so the worst 10 go out and one notice counts the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from apr_qa.action.commands import Commands
from apr_qa.evidence import Record
from apr_qa.score import RunScore

__all__ = ["MAX_ERRORS", "Annotation", "annotations_for", "emit_annotations"]

MAX_ERRORS = 10
"""GitHub's limit on error annotations shown for one step."""

_GATEWAY_KEYS = {
    "G0": "g0_integrity",
    "G1": "g1_model_loads",
    "G2": "g2_basic_inference",
    "G3": "g3_no_crashes",
    "G4": "g4_output_quality",
}
MESSAGE_CHARS = 1000


@dataclass(frozen=True)
class Annotation:
    """One error annotation: where, a title, a message."""

    file: str
    line: int
    col: int
    title: str
    message: str

    def properties(self) -> dict[str, str]:
        """The workflow command's properties."""
        return {
            "file": self.file,
            "line": str(self.line),
            "col": str(self.col),
            "title": self.title,
        }


@functools.lru_cache(maxsize=64)
def _gate_line(playbook: str, gate: str) -> tuple[int, int]:
    """Where in ``playbook`` the key governing ``gate`` is written; (1, 1) when the
    file cannot be read (it moved since the evidence was written)."""
    from apr_qa.errors import AprQaError
    from apr_qa.playbook.source import read_source

    try:
        source = read_source(Path(playbook))
    except (AprQaError, OSError):
        return 1, 1
    data = source.data if isinstance(source.data, dict) else {}
    candidates: list[tuple[str | int, ...]] = []
    key = _GATEWAY_KEYS.get(gate[:2])
    if key is not None:
        candidates.append(("gates", key))
    for i, item in enumerate(data.get("falsification_gates") or []):
        if isinstance(item, dict) and item.get("id") == gate:
            candidates.append(("falsification_gates", i))
    if key is not None:
        candidates.append(("gates",))
    candidates.append(("model",))
    for path in candidates:
        if path in source.keys or path in source.values:
            at = source.where(path, key=True)
            return at.line, at.col
    return 1, 1


def _relative(path: str, workspace: Path) -> str:
    """The path as GitHub wants it: relative to the repository (the workspace)."""
    try:
        return Path(path).resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return path


def annotation_for(record: Record, workspace: Path) -> Annotation | None:
    """The annotation of one failure (None when no playbook is known)."""
    scenario = record.scenario
    if scenario is not None and scenario.file and scenario.line:
        file, line, col = scenario.file, scenario.line, 1
    elif record.playbook:
        file = record.playbook
        line, col = _gate_line(record.playbook, record.gate)
    else:
        return None
    what = f" scenario '{scenario.name}'" if scenario is not None else ""
    message = f"{record.cell}{what}: {record.reason}"
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 1] + "…"
    return Annotation(
        file=_relative(file, workspace),
        line=line,
        col=col,
        title=f"{record.gate} {record.outcome} ({record.model})",
        message=message,
    )


def _worst_first(run: RunScore) -> Iterable[Record]:
    # Each model's worst failure, then each model's second worst, ...: one bad model
    # does not hide another's.
    ranked = [(rank, i, r) for i, m in enumerate(run.models) for rank, r in enumerate(m.failures)]
    return [r for _, _, r in sorted(ranked, key=lambda t: (t[0], t[1]))]


def annotations_for(run: RunScore, workspace: Path) -> list[Annotation]:
    """Every failure's annotation, worst first."""
    out = []
    for record in _worst_first(run):
        note = annotation_for(record, workspace)
        if note is not None:
            out.append(note)
    return out


def emit_annotations(
    run: RunScore, workspace: Path, commands: Commands, *, limit: int = MAX_ERRORS
) -> int:
    """Print the worst ``limit`` failures as ``::error`` lines and one ``::notice``
    counting the rest; returns how many errors were printed."""
    notes = annotations_for(run, workspace)
    for note in notes[:limit]:
        commands.error(note.message, **note.properties())
    rest = len(notes) - limit
    if rest > 0:
        commands.notice(
            f"{rest} more failure(s) not annotated (GitHub shows {limit} per step); "
            "see the job summary and junit.xml"
        )
    return min(len(notes), limit)
