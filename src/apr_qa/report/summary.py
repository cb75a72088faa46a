"""summary.json: the machine-readable verdict, one entry per model.

Built from a :class:`~apr_qa.score.RunScore` alone, so re-scoring the same
evidence (in any order, from any number of shard files) gives the same bytes.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from apr_qa import __version__
from apr_qa.evidence import Outcome, Record
from apr_qa.facts import ModelFacts
from apr_qa.gates import BASELINE_GATES, PROFILE_GATES, Category, lookup
from apr_qa.score import EXECUTED, ModelScore, RunScore

__all__ = [
    "SUMMARY_SCHEMA_VERSION",
    "TOP_FAILURES",
    "baseline_section",
    "cell_rows",
    "failure_json",
    "summary_json",
    "summary_schema",
    "throughput_rows",
    "write_summary",
]

SUMMARY_SCHEMA_VERSION = 1
TOP_FAILURES = 10


@cache
def summary_schema() -> dict[str, Any]:
    """The JSON Schema of summary.json, shipped in the package."""
    text = resources.files("apr_qa.schemas").joinpath("summary.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def cell_rows(model: ModelScore) -> list[dict[str, Any]]:
    """Pass rate per cell (format × quant × backend × modality), for the heatmap."""
    groups: dict[tuple[str, str, str, str], list[Record]] = defaultdict(list)
    for r in model.records:
        key = (r.format or "-", r.quantization or "-", r.backend or "-", r.modality or "-")
        groups[key].append(r)
    rows = []
    for (fmt, quant, backend, modality), records in sorted(groups.items()):
        executed = sum(1 for r in records if r.outcome in EXECUTED)
        passed = sum(1 for r in records if r.outcome is Outcome.CORROBORATED)
        rows.append(
            {
                "cell": ".".join((model.model, fmt, quant, backend, modality)),
                "format": fmt,
                "quantization": quant,
                "backend": backend,
                "modality": modality,
                "passed": passed,
                "executed": executed,
                "skipped": len(records) - executed,
                "pass_rate": round(passed / executed, 4) if executed else None,
            }
        )
    return rows


def throughput_rows(model: ModelScore) -> list[dict[str, Any]]:
    """Median tokens per second per format × backend, from profile records (PERF gates
    that measured ``tok_per_s``); empty when the model was not profiled. Scenario
    generations also time themselves, but on a shared runner between checks: a
    throughput claim is the profile's to make."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in model.records:
        gate = lookup(r.gate)
        if gate is None or gate.category is not Category.PERF or r.outcome not in EXECUTED:
            continue
        if "tok_per_s" in r.metrics:
            groups[(r.format or "-", r.backend or "-")].append(float(r.metrics["tok_per_s"]))
    return [
        {"format": fmt, "backend": backend, "tok_per_s": round(statistics.median(values), 2)}
        for (fmt, backend), values in sorted(groups.items())
    ]


def profile_rows(model: ModelScore) -> list[dict[str, Any]]:
    """Each profiled cell's figures (from its newest F-PROFILE-CI-001 record)."""
    newest: dict[str, Record] = {}
    for r in sorted(model.records, key=lambda r: (r.timestamp, r.record_id)):
        if r.gate == PROFILE_GATES[0] and "throughput_tok_s" in r.metrics:
            newest[r.cell] = r
    return [
        {"cell": cell, "figures": {k: round(float(v), 3) for k, v in r.metrics.items()}}
        for cell, r in sorted(newest.items())
    ]


def failure_json(record: Record) -> dict[str, Any]:
    """One failed check, as summary.json and the Markdown report show it."""
    scenario = record.scenario
    return {
        "record_id": record.record_id,
        "gate": record.gate,
        "severity": record.severity,
        "outcome": str(record.outcome),
        "cell": record.cell,
        "reason": record.reason,
        "scenario": scenario.name if scenario else None,
        "file": scenario.file if scenario else None,
        "line": scenario.line if scenario else None,
    }


def baseline_section(model: ModelScore) -> dict[str, Any] | None:
    """The "compared with baseline" entry: what the newest F-REGR-BASE-001 record kept
    of the comparison (None when the run named no baseline), with both gates' verdicts."""
    kept = [
        r
        for r in model.records
        if r.gate == BASELINE_GATES[0] and isinstance(r.expected, dict) and "counts" in r.expected
    ]
    if not kept:
        return None
    newest = max(kept, key=lambda r: (r.timestamp, r.record_id))
    verdicts = {
        r.gate: {"outcome": str(r.outcome), "reason": r.reason}
        for r in sorted(model.records, key=lambda r: (r.timestamp, r.record_id))
        if r.gate in BASELINE_GATES
    }
    return {**newest.expected, "verdicts": verdicts}


def _environment(model: ModelScore) -> list[dict[str, str]]:
    hosts = {json.dumps(dict(r.host), sort_keys=True) for r in model.records if r.host}
    return [json.loads(h) for h in sorted(hosts)]


def _model_json(model: ModelScore, fail_below: str, facts: ModelFacts | None) -> dict[str, Any]:
    total = sum(model.counts.values())
    return {
        "model": model.model,
        "stands_in_for": list(model.stands_in_for),
        "facts": facts.summary_json() if facts is not None else None,
        "mqs": model.mqs,
        "grade": model.grade,
        "status": model.status,
        "passed": model.passes(fail_below),
        "gateways": [
            {
                "gateway": g.gateway,
                "verdict": g.verdict,
                "reason": g.reason,
                "evidence": list(g.evidence),
            }
            for g in model.gateways
        ],
        "categories": [
            {
                "category": c.category,
                "points": round(float(c.points), 2),
                "max": c.weight,
                "passed": c.passed,
                "executed": c.executed,
                "skipped": c.skipped,
                "assessed": c.assessed,
            }
            for c in model.categories
        ],
        "counts": {**model.counts, "total": total},
        "halted": str(model.halted_by) if model.halted_by is not None else None,
        "halted_reason": model.halted,
        "duration_s": model.duration_s,
        "evaluated_at": max((r.timestamp for r in model.records), default=None) or None,
        "playbooks": [{"path": p, "sha256": s} for p, s in model.playbooks],
        "unknown_gates": list(model.unknown_gates),
        "run_ids": sorted({r.run_id for r in model.records}),
        "shards": sorted({r.shard for r in model.records if r.shard}),
        "environment": _environment(model),
        "cells": cell_rows(model),
        "throughput": throughput_rows(model),
        "profile": profile_rows(model),
        "failures_total": len(model.failures),
        "top_failures": [failure_json(r) for r in model.failures[:TOP_FAILURES]],
        "baseline": baseline_section(model),
    }


def summary_json(run: RunScore, *, fail_below: str = "C") -> dict[str, Any]:
    """The summary document (see ``summary.schema.json``)."""
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "apr_qa_version": __version__,
        "status": run.status,
        "passed": run.passes(fail_below),
        "fail_below": fail_below,
        "warnings": list(run.warnings),
        "models": [_model_json(m, fail_below, run.facts.get(m.model)) for m in run.models],
    }


def summary_text(document: dict[str, Any]) -> str:
    """summary.json's text (stable key order, UTF-8, trailing newline)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_summary(document: dict[str, Any], path: Path) -> Path:
    """Write summary.json."""
    path.write_text(summary_text(document), encoding="utf-8", errors="replace")
    return path
