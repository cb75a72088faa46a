"""The job summary: the run's Markdown appended to ``$GITHUB_STEP_SUMMARY``.

GitHub refuses a step summary over 1 MiB (and then shows none), so the
Markdown is rendered to fit what the file has left: the report module drops
failure entries, never the overview, to meet the budget.
"""

from __future__ import annotations

from pathlib import Path

from apr_qa.score import RunScore

__all__ = ["STEP_SUMMARY_LIMIT", "append_summary"]

STEP_SUMMARY_LIMIT = 1024 * 1024
"""GitHub's limit on one step's summary, in bytes."""


def append_summary(path: Path, run: RunScore, *, fail_below: str, extra: str = "") -> int:
    """Append the run's summary (and ``extra`` Markdown) to ``path`` within the 1 MiB a
    step may write; returns the bytes written."""
    from apr_qa.report.markdown import job_summary

    used = path.stat().st_size if path.exists() else 0
    tail = extra.encode("utf-8", errors="replace")
    budget = STEP_SUMMARY_LIMIT - used - len(tail)
    if budget <= 0:
        return 0
    data = job_summary(run, fail_below=fail_below, limit=budget).encode("utf-8", "replace")
    data += tail
    with path.open("ab") as fh:
        fh.write(data)
    return len(data)
