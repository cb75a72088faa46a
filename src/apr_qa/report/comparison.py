"""``apr-qa compare`` output: a comparison of two runs as JSON, Markdown or text.

The Markdown form is what a pull-request comment shows: the verdict first, each
model's MQS and grade before and after with per-category deltas, then the
regressed checks with both outputs, then the fixed ones; new and removed checks
are counted, never listed as regressions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from apr_qa.checks.baseline import MAX_LISTED, change_json
from apr_qa.compare import Change, Comparison, ModelDelta
from apr_qa.report.markdown import escape_inline, fenced

__all__ = [
    "COMPARE_SCHEMA_VERSION",
    "baseline_markdown",
    "comparison_json",
    "comparison_markdown",
    "comparison_text",
]

COMPARE_SCHEMA_VERSION = 1


def _model_json(delta: ModelDelta) -> dict[str, Any]:
    def side(view: Any) -> dict[str, Any] | None:
        if view is None:
            return None
        return {"mqs": view.mqs, "grade": view.grade, "status": view.status}

    return {
        "model": delta.model,
        "baseline_model": delta.baseline_model,
        "before": side(delta.before),
        "after": side(delta.after),
        "mqs_drop": delta.mqs_drop,
        "categories": [
            {"category": c.category, "before": c.before, "after": c.after, "delta": c.delta}
            for c in delta.categories
        ],
    }


def comparison_json(
    comparison: Comparison, *, before: str, after: str, warnings: Sequence[str] = ()
) -> dict[str, Any]:
    """The whole comparison as one JSON document (every moved check listed)."""
    return {
        "schema_version": COMPARE_SCHEMA_VERSION,
        "before": before,
        "after": after,
        "regressed": bool(comparison.regressed),
        "checks_compared": comparison.checks_compared,
        "counts": comparison.counts,
        "models": [_model_json(d) for d in comparison.models],
        "regressed_checks": [change_json(c) for c in comparison.regressed],
        "fixed_checks": [change_json(c) for c in comparison.of(Change.FIXED)],
        "new_checks": [c.key for c in comparison.of(Change.NEW)],
        "removed_checks": [c.key for c in comparison.of(Change.REMOVED)],
        "notes": list(comparison.notes),
        "warnings": list(warnings),
    }


def _points(value: float | None) -> str:
    return "not assessed" if value is None else f"{value:g}"


def _delta(value: float | None) -> str:
    return "—" if value is None else f"{value:+g}"


def _score_table(models: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| model | MQS before | MQS after | grade | status |", "|---|---|---|---|---|"]
    for m in models:
        before, after = m["before"] or {}, m["after"] or {}
        lines.append(
            f"| {escape_inline(m['model'])} | {before.get('mqs', '—')} | {after.get('mqs', '—')} "
            f"| {before.get('grade', '—')} → {after.get('grade', '—')} "
            f"| {before.get('status', '—')} → {after.get('status', '—')} |"
        )
    lines += ["", "| category | before | after | Δ |", "|---|---|---|---|"]
    for m in models:
        for c in m["categories"]:
            name = c["category"] if len(models) == 1 else f"{m['model']} {c['category']}"
            lines.append(
                f"| {escape_inline(name)} | {_points(c['before'])} | {_points(c['after'])} "
                f"| {_delta(c['delta'])} |"
            )
    return lines


def _check_entry(c: Mapping[str, Any]) -> list[str]:
    scenario = f" — {escape_inline(c['scenario'])}" if c.get("scenario") else ""
    lines = [
        f"- **{escape_inline(c['gate'])}** in `{escape_inline(c['cell'])}`{scenario}: "
        f"{c['before']} → {c['after']}",
        f"  - now: {escape_inline(c.get('reason_after') or '')}",
    ]
    for label, key in (("output before", "output_before"), ("output now", "output_after")):
        if c.get(key) is not None:
            lines.append(f"  - {label}:\n\n{_indent(fenced(c[key]))}")
    return lines


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else line for line in text.splitlines()) + "\n"


REPORT_LISTED = 5
"""Moved checks a report's baseline section shows (summary.json and compare list more):
the job summary and the PR comment have a size limit shared by every model."""


def _checks(
    title: str, items: Sequence[Mapping[str, Any]], total: int, limit: int = MAX_LISTED
) -> list[str]:
    if not total:
        return []
    lines = ["", f"#### {title} ({total})", ""]
    for c in items[:limit]:
        lines += _check_entry(c)
    if total > len(items[:limit]):
        lines.append(f"\n… {total - len(items[:limit])} more not shown.")
    return lines


def _counts_line(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{counts[str(ch)]} {ch}" for ch in Change)


def comparison_markdown(document: Mapping[str, Any]) -> str:
    """The comparison (:func:`comparison_json`'s document) as a PR comment."""
    counts = document["counts"]
    if not document["checks_compared"]:
        verdict = "ℹ️ Scores compared; the baseline keeps no per-check outcomes"
    elif document["regressed"]:
        verdict = f"❌ {counts['regressed']} check(s) regressed"
    else:
        verdict = "✅ No check regressed"
    lines = [
        f"### apr-qa compare: {verdict}",
        "",
        f"`{escape_inline(document['before'])}` → `{escape_inline(document['after'])}`: "
        f"{_counts_line(counts)}.",
        "",
        *_score_table(document["models"]),
    ]
    lines += _checks("Regressed", document["regressed_checks"], counts["regressed"])
    lines += _checks("Fixed", document["fixed_checks"], counts["fixed"])
    for note in (*document["notes"], *document["warnings"]):
        lines.append(f"\n> {escape_inline(note)}")
    return "\n".join(lines) + "\n"


def comparison_text(document: Mapping[str, Any]) -> str:
    """A terminal summary: counts, scores, the regressed checks."""
    lines = [f"{document['before']} -> {document['after']}: {_counts_line(document['counts'])}"]
    for m in document["models"]:
        before, after = m["before"] or {}, m["after"] or {}
        lines.append(
            f"  {m['model']}: MQS {before.get('mqs', '-')} -> {after.get('mqs', '-')}, "
            f"grade {before.get('grade', '-')} -> {after.get('grade', '-')}"
        )
    for c in document["regressed_checks"]:
        scenario = f" [{c['scenario']}]" if c.get("scenario") else ""
        lines.append(f"  regressed: {c['gate']} in {c['cell']}{scenario}: {c['reason_after']}")
    for note in document["notes"]:
        lines.append(f"  note: {note}")
    return "\n".join(lines) + "\n"


def baseline_markdown(section: Mapping[str, Any]) -> str:
    """A report's "Compared with baseline" section for one model (summary.json's
    ``baseline`` entry), regressed checks first."""
    base = section["baseline"]
    counts = section["counts"]
    lines = [
        "#### Compared with baseline",
        "",
        f"Baseline `{escape_inline(base['path'])}`: {_counts_line(counts)}; "
        f"MQS {section['mqs_before']} → {section['mqs_after']}.",
    ]
    lines += _checks("Regressed", section["regressed"], counts["regressed"], REPORT_LISTED)
    lines += ["", "| category | before | after |", "|---|---|---|"]
    for c in section["categories"]:
        lines.append(f"| {c['category']} | {_points(c['before'])} | {_points(c['after'])} |")
    lines += _checks("Fixed", section["fixed"], counts["fixed"], REPORT_LISTED)
    return "\n".join(lines) + "\n"
