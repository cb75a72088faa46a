"""Render a plan for people (a table with counts) and for machines (streamed JSON)."""

from __future__ import annotations

import json
from collections import Counter
from typing import IO

from apr_qa.plan import Plan

__all__ = ["PLAN_SCHEMA_VERSION", "render_table", "write_json"]

PLAN_SCHEMA_VERSION = 1
MAX_TABLE_ROWS = 60


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def render_table(plan: Plan) -> str:
    """A readable table of cells with counts; long plans are summarised per playbook."""
    lines: list[str] = []
    shard = f" (shard {plan.shard}: {len(plan.cells)} cells)" if plan.shard else ""
    per_book = Counter(c.playbook.name for c in plan.cells)
    tests_per_book = Counter[str]()
    for cell in plan.cells:
        tests_per_book[cell.playbook.name] += cell.scenario_count
    if len(plan.cells) <= MAX_TABLE_ROWS:
        header = ("CELL", "SCENARIOS", "COST")
        rows = [(c.id, f"{c.scenario_count:,}", f"{c.cost:,.0f}") for c in plan.cells]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            lines.append(
                "  ".join(
                    v.ljust(w) if i == 0 else v.rjust(w)
                    for i, (v, w) in enumerate(zip(row, widths, strict=True))
                )
            )
        lines.append("")
    for playbook in plan.playbooks:
        if playbook.name not in per_book:
            continue
        m = playbook.matrix
        lines.append(
            f"{playbook.name}: {per_book[playbook.name]} cells "
            f"({_count(len(m.formats), 'format')}, {_count(len(m.backends), 'backend')}, "
            f"{_count(len(m.modalities), 'modality', 'modalities')}), "
            f"{tests_per_book[playbook.name]:,} tests"
        )
    lines.append(
        f"Plan: {len(plan.playbooks)} playbook{'s' if len(plan.playbooks) != 1 else ''}, "
        f"{len(plan.cells):,} cells, {plan.test_count:,} tests{shard}"
    )
    return "\n".join(lines)


def write_json(plan: Plan, out: IO[str], *, scenarios: bool = True) -> None:
    """Stream the plan as one JSON document (cells written one at a time)."""
    head = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "shard": str(plan.shard) if plan.shard else None,
        "playbooks": [
            {"name": p.name, "path": str(p.path), "sha256": p.sha256, "model": p.model.id}
            for p in plan.playbooks
        ],
        "totals": {"cells": len(plan.cells), "tests": plan.test_count},
    }
    out.write(json.dumps(head)[:-1] + ', "cells": [')
    for i, cell in enumerate(plan.cells):
        item: dict[str, object] = {
            "id": cell.id,
            "playbook": cell.playbook.name,
            "model": cell.model,
            "format": cell.format,
            "quantization": cell.quantization,
            "backend": cell.backend,
            "modality": cell.modality,
            "scenario_count": cell.scenario_count,
            "cost": round(cell.cost, 2),
        }
        if scenarios:
            item["scenarios"] = [
                {
                    "id": s.id,
                    "name": s.name,
                    "kind": s.kind,
                    "family": s.family,
                    "seed": s.seed,
                    "file": s.source.file if s.source else None,
                    "line": s.source.line if s.source else None,
                }
                for s in cell.scenarios()
            ]
        out.write(("\n" if i == 0 else ",\n") + json.dumps(item))
    out.write("\n]}\n")
