"""The per-tensor view: the tensors furthest from their reference, across a model's
differential records.

The tensor diff (F-ROSETTA-DIFF-003) and the role statistics (F-ROSETTA-STATS-001..004)
keep their worst tensors in the record's ``expected`` (``{"worst_tensors": [...]}``);
this module gathers them, ranks them by how far over (or how near) their tolerance
each is, and renders the table for the Markdown report (the HTML template takes the
rows as they are; Jinja2 escapes them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from apr_qa.evidence import Record

__all__ = ["MAX_ROWS", "TensorLine", "tensor_lines", "tensors_markdown"]

MAX_ROWS = 12


@dataclass(frozen=True)
class TensorLine:
    """One tensor as the report shows it."""

    tensor: str
    gate: str
    cell: str
    dtype: str
    measure: str
    value: float
    tolerance: float

    @property
    def ratio(self) -> float:
        """``value / tolerance``: over 1 is beyond the tolerance."""
        return self.value / self.tolerance if self.tolerance > 0 else math.inf

    @property
    def beyond(self) -> bool:
        """Whether this tensor is over its tolerance."""
        return self.value > self.tolerance


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _lines(record: Record) -> Iterable[TensorLine]:
    expected = record.expected
    rows = expected.get("worst_tensors") if isinstance(expected, Mapping) else None
    if not isinstance(rows, list):
        return
    for row in rows:
        if not isinstance(row, Mapping):
            continue  # evidence from elsewhere: show what is well-formed, skip the rest
        value, tolerance = _number(row.get("value")), _number(row.get("tolerance"))
        if "value" in row and row["value"] is None:
            value = math.inf  # not a number (a NaN in the tensor): the worst there is
        if value is None or tolerance is None:
            continue
        yield TensorLine(
            tensor=str(row.get("tensor", "?")),
            gate=record.gate,
            cell=record.cell,
            dtype=str(row.get("dtype", "")),
            measure=str(row.get("measure", "")),
            value=value,
            tolerance=tolerance,
        )


def tensor_lines(records: Iterable[Record], limit: int = MAX_ROWS) -> list[TensorLine]:
    """The ``limit`` tensors furthest over their tolerance, worst first."""
    lines = [line for record in records for line in _lines(record)]
    return sorted(lines, key=lambda t: t.ratio, reverse=True)[:limit]


def tensors_markdown(lines: list[TensorLine]) -> str:
    """The per-tensor table in Markdown, every cell escaped; empty without rows."""
    from apr_qa.report.markdown import escape_inline

    if not lines:
        return ""
    out = [
        "#### Worst tensors",
        "",
        "| tensor | gate | artifact | type | measure | value | tolerance | |",
        "|---|---|---|---|---|---:|---:|:---:|",
    ]
    for t in lines:
        cells = (t.tensor, t.gate, t.cell, t.dtype, t.measure)
        shown = " | ".join(escape_inline(c) for c in cells)  # escapes "|" too
        mark = "❌" if t.beyond else "✅"
        out.append(f"| {shown} | {t.value:.3g} | {t.tolerance:.3g} | {mark} |")
    return "\n".join(out) + "\n"
