"""The HTML report: one self-contained file, no network, no scripts.

Everything a reader needs is inline (CSS, data); a Content-Security-Policy
forbids any fetch or script, so an output that contains markup stays text.
Jinja2 autoescaping is on for every value, and control characters in any value
(NUL, BEL, ESC from model output) are shown as visible escapes, never written raw.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from apr_qa import __version__
from apr_qa.evidence import Record
from apr_qa.report.summary import baseline_section, cell_rows, profile_rows
from apr_qa.report.tensors import tensor_lines
from apr_qa.report.visible import visible
from apr_qa.score import ModelScore, RunScore

__all__ = ["MAX_FAILURES_SHOWN", "heat_color", "html_string", "write_html"]

MAX_FAILURES_SHOWN = 300
_OUTPUT_CHARS = 2000


def heat_color(rate: float | None) -> str:
    """Red (0) through amber to green (1); grey when nothing ran."""
    if rate is None:
        return "#d0d4da"
    return f"hsl({round(120 * rate)}, 62%, 42%)"


def _heatmap(model: ModelScore) -> dict[str, Any]:
    # Only real cells: checks of a whole artifact (G0) or model (G4) have no backend or modality.
    rows = [r for r in cell_rows(model) if "-" not in (r["backend"], r["modality"])]
    columns = sorted({(r["backend"], r["modality"]) for r in rows})
    artifacts = sorted({(r["format"], r["quantization"]) for r in rows})
    grid: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        r = {**r, "color": heat_color(r["pass_rate"])}
        grid[(r["format"], r["quantization"])][(r["backend"], r["modality"])] = r
    return {
        "columns": [f"{b} · {m}" for b, m in columns],
        "rows": [
            {"label": f"{f} · {q}", "cells": [grid[(f, q)].get(c) for c in columns]}
            for f, q in artifacts
        ],
    }


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= _OUTPUT_CHARS:
        return text
    return text[:_OUTPUT_CHARS] + f"… [{len(text) - _OUTPUT_CHARS} more chars]"


def _failure(record: Record) -> dict[str, Any]:
    scenario = record.scenario
    where = None
    if scenario is not None and scenario.file:
        where = f"{scenario.file}:{scenario.line}" if scenario.line else scenario.file
    return {
        "gate": record.gate,
        "severity": record.severity,
        "outcome": str(record.outcome),
        "cell": record.cell,
        "reason": record.reason,
        "scenario": scenario.name if scenario else None,
        "prompt": _clip(scenario.prompt) if scenario else None,
        "where": where,
        "counterexample": _clip(record.counterexample),
        "expected": None if record.expected is None else _clip(str(record.expected)),
        "output": _clip(record.output),
        "record_id": record.record_id,
    }


def _model_view(model: ModelScore) -> dict[str, Any]:
    hosts = sorted({tuple(sorted(r.host.items())) for r in model.records if r.host})
    return {
        "score": model,
        "grade_class": "grade-" + model.grade.replace("+", "plus").lower(),
        "status_class": "status-" + model.status.lower(),
        "categories": [
            {
                "name": c.category,
                "points": float(c.points),
                "weight": c.weight,
                "passed": c.passed,
                "executed": c.executed,
                "skipped": c.skipped,
                "assessed": c.assessed,
                "percent": round(100 * float(c.points) / c.weight, 1),
            }
            for c in model.categories
        ],
        "heatmap": _heatmap(model),
        "failures": [_failure(r) for r in model.failures[:MAX_FAILURES_SHOWN]],
        "failures_hidden": max(0, len(model.failures) - MAX_FAILURES_SHOWN),
        "total": sum(model.counts.values()),
        "hosts": [dict(h) for h in hosts],
        "baseline": baseline_section(model),
        "profile": profile_rows(model),
        "tensors": tensor_lines(model.records),
    }


def html_string(run: RunScore, *, fail_below: str = "C", title: str = "apr-qa report") -> str:
    """Render the report as one HTML document."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("apr_qa.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("report.html.jinja")
    # The template itself holds no control character, so escaping the whole page
    # reaches every value (attributes included) and changes nothing else.
    return visible(
        template.render(
            title=title,
            run=run,
            passed=run.passes(fail_below),
            fail_below=fail_below,
            models=[_model_view(m) for m in run.models],
            version=__version__,
        )
    )


def write_html(run: RunScore, path: Path, *, fail_below: str = "C") -> Path:
    """Write report.html."""
    path.write_text(html_string(run, fail_below=fail_below), encoding="utf-8", errors="replace")
    return path
