"""The README certification block: summary counts and the table, between two markers.

Rendered from the registry alone, so the README can never disagree with its data
(the original's committed table did). Only the text between the markers is
generated; everything outside them is kept byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from apr_qa.certify.registry import NO_GRADE, CertifyError, Row, sort_key
from apr_qa.facts import format_parameters
from apr_qa.score import Status

__all__ = [
    "END",
    "START",
    "STATUS_COLOURS",
    "block_lines",
    "hub_link",
    "replace_block",
    "size_label",
    "stamp_of",
]

START = "<!-- CERTIFICATION_TABLE_START -->"
END = "<!-- CERTIFICATION_TABLE_END -->"
STATUS_COLOURS: dict[str, str] = {
    Status.CERTIFIED: "brightgreen",
    Status.PROVISIONAL: "yellow",
    Status.BLOCKED: "red",
    Status.PENDING: "lightgray",
}
"""shields.io colours, the seed README's for Blocked and Pending."""
_MARKS = {"pass": "✓", "fail": "✗"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_UPDATED = re.compile(r"^\*\*Certification Summary\*\* \(updated: (?P<stamp>[^)]*)\)$")
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>])")


def _escape(text: str) -> str:
    """Cell text that cannot break the table or inject markup (names come from files)."""
    flat = " ".join(text.split())
    return _SPECIAL.sub(r"\\\1", flat) if flat else "-"


def hub_link(model: str) -> str:
    """The Model cell: ``[name](https://huggingface.co/org/name)`` for a hub id, else its text."""
    if _HUB_ID.match(model):
        name = model.split("/", 1)[1]
        return f"[{_escape(name)}](https://huggingface.co/{model})"
    return _escape(model)


def size_label(parameters: str) -> str:
    """The Size cell: a counted parameter count as people write it (``1.5B``); a label the
    registry already holds (``7B``) as written; ``-`` when unknown."""
    text = parameters.strip()
    if text.isdigit():
        return format_parameters(int(text))
    return _escape(text) if text else "-"


def _status_badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "lightgray")
    return f"![{status.lower()}](https://img.shields.io/badge/{status.upper()}-{colour})"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("-" * (len(h) + 2) for h in header) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _throughput_columns(rows: Sequence[Row]) -> list[str]:
    return sorted({c for r in rows for c, v in r.tok_s.items() if v.strip()})


def _model_cell(row: Row, rows: Sequence[Row]) -> str:
    cell = hub_link(row.model)
    if sum(1 for r in rows if r.model == row.model) > 1 and row.playbook:
        # The same model under two playbooks (a smoke and a full one): say which is which.
        name = row.playbook.rsplit("/", 1)[-1]
        cell += f" ({_escape(name)})"
    return cell


def block_lines(rows: Sequence[Row], updated: str) -> list[str]:
    """The generated lines: summary line, counts, then the table (tok/s columns when measured)."""
    ordered = sorted(rows, key=sort_key)
    total = len(ordered)
    lines = [f"**Certification Summary** (updated: {updated})", ""]
    counts = [(str(s), f"{sum(1 for r in ordered if r.status == s)}/{total}") for s in Status]
    lines += _table(("Status", "Count"), counts)
    throughput = _throughput_columns(ordered)
    header = ["Model", "Family", "Size", "Status", "MQS", "Grade", "G1", "G2", "G3", "G4"]
    header += ["tok/s " + " ".join(c.removeprefix("tok_s_").split("_", 1)) for c in throughput]
    table = []
    for row in ordered:
        pending = row.status == Status.PENDING
        cells = [
            _model_cell(row, ordered),
            _escape(row.family),
            size_label(row.parameters),
            _status_badge(row.status),
            row.mqs,
            NO_GRADE if pending else row.grade,
            *(_MARKS.get(row.gateways[g], "-") for g in ("g1", "g2", "g3", "g4")),
            *(_escape(row.tok_s.get(c, "")) for c in throughput),
        ]
        table.append(cells)
    lines += ["", *_table(header, table)]
    return lines


def stamp_of(when: datetime) -> str:
    """The update line's time: minutes, UTC."""
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _find(text: str, where: str) -> tuple[int, int] | None:
    starts = [m.start() for m in re.finditer(re.escape(START), text)]
    ends = [m.start() for m in re.finditer(re.escape(END), text)]
    if not starts and not ends:
        return None
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise CertifyError(
            [
                f"{where}: expected one {START} followed by one {END}; found "
                f"{len(starts)} start and {len(ends)} end marker(s)"
            ]
        )
    return starts[0] + len(START), ends[0]


def _current_lines(inner: str) -> list[str]:
    return inner.replace("\r\n", "\n").strip("\n").split("\n")


def replace_block(
    text: str, rows: Sequence[Row], now: datetime, where: str, *, append: bool = False
) -> str:
    """``text`` with the block between the markers regenerated.

    The update time is ``now`` only when the rest of the block changes; an unchanged
    block keeps its time, so the same registry always gives the same README bytes.
    Without markers: an error, or with ``append`` a section added at the end.
    """
    newline = "\r\n" if "\r\n" in text else "\n"
    span = _find(text, where)
    if span is None:
        if not append:
            raise CertifyError(
                [
                    f"{where}: no {START} … {END} markers; add them where the table "
                    "belongs, or pass --append to add a section at the end"
                ]
            )
        lines = block_lines(rows, stamp_of(now))
        section = ["## Model Certifications", "", START, *lines, END, ""]
        sep = "" if not text or text.endswith(("\n", "\r\n")) else newline
        gap = newline if text.strip() else ""
        return text + sep + gap + newline.join(section)
    begin, end = span
    current = _current_lines(text[begin:end])
    match = _UPDATED.match(current[0]) if current else None
    updated = match["stamp"] if match else None
    if updated is None or block_lines(rows, updated) != current:
        updated = stamp_of(now)
    inner = newline + newline.join(block_lines(rows, updated)) + newline
    return text[:begin] + inner + text[end:]
