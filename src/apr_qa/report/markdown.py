"""Markdown reports: the GitHub job summary and the PR comment.

Both read well in a terminal too (plain tables, fenced output). GitHub caps a
step summary at 1 MiB and a comment at 65,536 characters; past our budget the
worst failures are kept and an "N more" line says what was left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from apr_qa.evidence import HaltKind, Record
from apr_qa.report.visible import visible
from apr_qa.score import GatewayVerdict as Verdict
from apr_qa.score import ModelScore, RunScore

__all__ = [
    "COMMENT_LIMIT_CHARS",
    "COMMENT_MARKER",
    "JOB_SUMMARY_LIMIT_BYTES",
    "escape_inline",
    "fenced",
    "job_summary",
    "pr_comment",
    "printable",
]

JOB_SUMMARY_LIMIT_BYTES = 1024 * 1024
COMMENT_LIMIT_CHARS = 60_000
# The Action finds its earlier comment by this marker and edits it in place.
COMMENT_MARKER = "<!-- apr-qa-report -->"
OUTPUT_PREVIEW_CHARS = 600

_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")
_STATUS_ICON = {"Certified": "✅", "Provisional": "🟡", "Blocked": "❌", "Pending": "⏳"}
_VERDICT_ICON = {Verdict.PASSED: "✅", Verdict.FAILED: "❌", Verdict.NOT_ASSESSED: "➖"}


def printable(text: str) -> str:
    """Text with control characters and lone surrogates shown as visible escapes
    (``\\x1b``): a terminal would obey an ESC sequence, a reader needs to see it."""
    return visible(text)


def escape_inline(text: str) -> str:
    """One line of untrusted text made inert in Markdown (tables, HTML, emphasis)."""
    one_line = " ".join(printable(text).split())
    return _INLINE_SPECIAL.sub(r"\\\1", one_line)


def fenced(text: str, limit: int = OUTPUT_PREVIEW_CHARS) -> str:
    """Untrusted text as a fenced code block no content can close early."""
    text = printable(text)
    body = text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def _where(record: Record) -> str:
    scenario = record.scenario
    if scenario is not None and scenario.file:
        line = f":{scenario.line}" if scenario.line else ""
        return f" ({escape_inline(scenario.file)}{line})"
    return ""


def _failure_entry(record: Record, *, with_output: bool) -> str:
    scenario = f" {escape_inline(record.scenario.name)}" if record.scenario else ""
    head = (
        f"- **{record.severity} {escape_inline(record.gate)}**{scenario} in "
        f"`{record.cell.replace('`', '')}`{_where(record)}: {record.outcome}: "
        f"{escape_inline(record.reason)}"
    )
    lines = [head]
    if with_output:
        for label, value in (("counterexample", record.counterexample), ("output", record.output)):
            if value:
                block = fenced(value).replace("\n", "\n  ")
                lines.append(f"  {label}:\n\n  {block}\n")
    return "\n".join(lines) + "\n"


def _overview(run: RunScore, fail_below: str) -> str:
    # The heading answers the CI question (did the threshold pass?) and then states the
    # status; "✅ Blocked" read as a contradiction, so each part says what it is.
    interrupted = any(m.halted_by is HaltKind.INTERRUPTED for m in run.models)
    if interrupted:
        verdict = "⚠️ interrupted (partial evidence)"
    elif run.passes(fail_below):
        verdict = f"✅ CI threshold passed (grade ≥ {fail_below})"
    else:
        verdict = f"❌ CI threshold failed (gateways held and grade ≥ {fail_below})"
    lines = [f"## apr-qa: {verdict} · status {run.status}", ""]
    if not run.models:
        lines += ["No evidence records: nothing was scored (status Pending).", ""]
    else:
        lines += [
            "| Model | MQS | Grade | Status | G0 | G1 | G2 | G3 | G4 | Checks | Failed |",
            "|---|---:|:---:|---|:---:|:---:|:---:|:---:|:---:|---:|---:|",
        ]
        for m in run.models:
            gates = " | ".join(_VERDICT_ICON[g.verdict] for g in m.gateways)
            total = sum(m.counts.values())
            lines.append(
                f"| {escape_inline(m.label)} | {m.mqs} | {m.grade} | "
                f"{_STATUS_ICON[m.status]} {m.status} | {gates} | {total} | {len(m.failures)} |"
            )
        lines.append("")
        lines.append(
            f"Gateways: ✅ passed, ❌ failed, ➖ not assessed. CI threshold: grade {fail_below}."
        )
        lines.append("")
    for warning in run.warnings:
        lines.append(f"> ⚠️ {escape_inline(warning)}")
    if run.warnings:
        lines.append("")
    return "\n".join(lines) + "\n"


def _model_section(model: ModelScore) -> str:
    lines = [
        f"### {escape_inline(model.label)}: MQS {model.mqs}, grade {model.grade}, {model.status}",
        "",
    ]
    if model.halted:
        lines += [f"**Halted:** {escape_inline(model.halted)}", ""]
    failed_gates = [g for g in model.gateways if g.verdict == Verdict.FAILED]
    for g in failed_gates:
        lines.append(f"- gateway {g.gateway} failed: {escape_inline(g.reason)}")
    if failed_gates:
        lines.append("")
    lines += ["| Category | Points | Passed / executed | Skipped |", "|---|---:|---:|---:|"]
    for c in model.categories:
        points = (
            f"{float(c.points):.1f} / {c.weight}" if c.assessed else f"not assessed / {c.weight}"
        )
        lines.append(f"| {c.category} | {points} | {c.passed} / {c.executed} | {c.skipped} |")
    counts = ", ".join(f"{n} {o}" for o, n in model.counts.items() if n)
    lines += ["", f"Checks: {counts or 'none'}.", ""]
    from apr_qa.report.comparison import baseline_markdown
    from apr_qa.report.summary import baseline_section

    section = baseline_section(model)
    if section is not None:
        lines += [baseline_markdown(section)]
    lines += _profile_lines(model)
    from apr_qa.report.tensors import tensor_lines, tensors_markdown

    table = tensors_markdown(tensor_lines(model.records))
    if table:
        lines += [table]
    return "\n".join(lines) + "\n"


_PROFILE_COLUMNS = (
    ("tok/s", "throughput_tok_s"),
    ("decode tok/s", "decode_tok_s"),
    ("TTFT p50 ms", "ttft_p50_ms"),
    ("p50 ms", "latency_p50_ms"),
    ("p99 ms", "latency_p99_ms"),
    ("peak RSS MB", "peak_rss_mb"),
)


def _profile_lines(model: ModelScore) -> list[str]:
    """The profile table (figures per cell), when the model was profiled."""
    from apr_qa.report.summary import profile_rows

    rows = profile_rows(model)
    if not rows:
        return []
    head = " | ".join(name for name, _ in _PROFILE_COLUMNS)
    lines = [
        "**Profile**",
        "",
        f"| Cell | {head} |",
        "|---" + "|---:" * len(_PROFILE_COLUMNS) + "|",
    ]
    for row in rows:
        figures = row["figures"]
        cells = " | ".join(
            f"{figures[key]:.1f}" if key in figures else "-" for _, key in _PROFILE_COLUMNS
        )
        lines.append(f"| {escape_inline(row['cell'])} | {cells} |")
    return [*lines, ""]


def _interleaved(models: Iterable[ModelScore]) -> list[tuple[int, Record]]:
    # Each model's worst failure first, then each model's second worst, ...
    ranked = [(rank, i, r) for i, m in enumerate(models) for rank, r in enumerate(m.failures)]
    return [(i, r) for _, i, r in sorted(ranked, key=lambda t: (t[0], t[1]))]


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", errors="replace"))


def _render(
    run: RunScore,
    fail_below: str,
    *,
    budget: int,
    in_bytes: bool,
    with_output: bool,
    prefix: str = "",
    footer: str = "",
) -> str:
    measure = _utf8_len if in_bytes else len
    head = prefix + _overview(run, fail_below)
    sections = [_model_section(m) for m in run.models]
    entries = _interleaved(run.models)
    # Reserve room for the "N more" lines and headings before filling with failures.
    reserve = 200 * (len(run.models) + 1) + measure(footer)
    used = measure(head) + sum(measure(s) for s in sections) + reserve
    chosen: dict[int, list[str]] = {i: [] for i in range(len(run.models))}
    for i, record in entries:
        text = _failure_entry(record, with_output=with_output)
        cost = measure(text)
        if used + cost > budget:
            continue
        chosen[i].append(text)
        used += cost
    parts = [head]
    for i, model in enumerate(run.models):
        parts.append(sections[i])
        if model.failures:
            parts.append(f"#### Failures ({len(model.failures)}), worst first\n\n")
            parts.extend(chosen[i])
            left = len(model.failures) - len(chosen[i])
            if left:
                parts.append(
                    f"\n… {left} more failures not shown here (see junit.xml and report.html).\n"
                )
            parts.append("\n")
    parts.append(footer)
    return "".join(parts)


def job_summary(
    run: RunScore, *, fail_below: str = "C", limit: int = JOB_SUMMARY_LIMIT_BYTES
) -> str:
    """The step-summary Markdown, at most ``limit`` UTF-8 bytes."""
    footer = "\n_Generated by apr-qa from evidence alone; re-render with `apr-qa report`._\n"
    return _render(run, fail_below, budget=limit, in_bytes=True, with_output=True, footer=footer)


def pr_comment(run: RunScore, *, fail_below: str = "C", limit: int = COMMENT_LIMIT_CHARS) -> str:
    """The PR-comment Markdown (starts with :data:`COMMENT_MARKER`), at most ``limit`` chars."""
    return _render(
        run,
        fail_below,
        budget=limit,
        in_bytes=False,
        with_output=False,
        prefix=COMMENT_MARKER + "\n",
    )
