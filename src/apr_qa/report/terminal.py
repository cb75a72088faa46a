"""The verdict printed at the end of ``apr-qa run`` and ``apr-qa report``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import click

from apr_qa.evidence import HaltKind
from apr_qa.report.markdown import printable
from apr_qa.score import GatewayVerdict as Verdict
from apr_qa.score import RunScore

__all__ = ["TOP_FAILURES_SHOWN", "verdict_text"]

TOP_FAILURES_SHOWN = 5

_STATUS_COLOR = {"Certified": "green", "Provisional": "yellow", "Blocked": "red", "Pending": "blue"}
_VERDICT_MARK = {Verdict.PASSED: "pass", Verdict.FAILED: "FAIL", Verdict.NOT_ASSESSED: "n/a"}


def _one_line(text: str, width: int = 160) -> str:
    flat = " ".join(printable(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def verdict_text(
    run: RunScore,
    *,
    fail_below: str = "C",
    reports: Mapping[str, Path] | None = None,
    color: bool = False,
    warnings: bool = True,
) -> str:
    """The verdict as plain lines (ANSI colour only when ``color``); ``warnings=False``
    leaves the evidence warnings out, for a caller that prints them on stderr."""

    def style(text: str, **kw: object) -> str:
        return click.style(text, **kw) if color else text  # type: ignore[arg-type]

    lines: list[str] = []
    if not run.models:
        lines.append(style("No evidence records: nothing scored (Pending).", fg="blue", bold=True))
    for m in run.models:
        head = f"{_one_line(m.label)}: MQS {m.mqs}/1000  grade {m.grade}  {m.status}"
        lines.append(style(head, fg=_STATUS_COLOR[m.status], bold=True))
        gates = "  ".join(f"{g.gateway} {_VERDICT_MARK[g.verdict]}" for g in m.gateways)
        lines.append(f"  gateways: {gates}")
        cats = "  ".join(
            f"{c.category} {float(c.points):.0f}/{c.weight}" if c.assessed else f"{c.category} n/a"
            for c in m.categories
        )
        lines.append(f"  categories: {cats}")
        counts = ", ".join(f"{n} {o}" for o, n in m.counts.items() if n)
        lines.append(f"  checks: {counts or 'none'}")
        if m.halted:
            lines.append(style(f"  halted: {_one_line(m.halted)}", fg="red"))
        for record in m.failures[:TOP_FAILURES_SHOWN]:
            where = ""
            if record.scenario is not None and record.scenario.file:
                line = f":{record.scenario.line}" if record.scenario.line else ""
                where = f" ({record.scenario.file}{line})"
            lines.append(
                "  "
                + style(f"✗ {record.severity} {record.gate}", fg="red")
                + f" {_one_line(record.cell)}{_one_line(where)}: {_one_line(record.reason)}"
            )
        if len(m.failures) > TOP_FAILURES_SHOWN:
            lines.append(f"  … {len(m.failures) - TOP_FAILURES_SHOWN} more failures in the reports")
    for warning in run.warnings if warnings else ():
        lines.append(style(f"warning: {warning}", fg="yellow"))
    ok = run.passes(fail_below)
    if any(m.halted_by is HaltKind.INTERRUPTED for m in run.models):
        verdict = "INTERRUPTED: the evidence is partial, the verdict provisional"
        lines.append(style(f"{verdict}; status {run.status}", fg="red", bold=True))
    else:
        lines.append(
            style(
                f"{'PASS' if ok else 'FAIL'} (CI threshold: gateways held, grade ≥ {fail_below}); "
                f"status {run.status}",
                fg="green" if ok else "red",
                bold=True,
            )
        )
    if reports:
        lines.append("reports:")
        lines.extend(f"  {name}: {path}" for name, path in reports.items())
    return "\n".join(lines)
