"""Reports rendered from evidence: summary.json, junit.xml, report.html, Markdown.

Every renderer is a pure function of the :class:`~apr_qa.score.RunScore`, so a
report can be rebuilt from evidence files alone (``apr-qa report``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apr_qa.errors import ExitCode, UsageError
from apr_qa.evidence import Record
from apr_qa.score import GRADES, RunScore, score

__all__ = ["REPORT_FILES", "RenderResult", "check_grade", "render_reports"]

REPORT_FILES: dict[str, str] = {
    "summary": "summary.json",
    "junit": "junit.xml",
    "html": "report.html",
    "markdown": "summary.md",
    "comment": "comment.md",
}


@dataclass(frozen=True)
class RenderResult:
    """What was written, the score behind it, and the exit code it implies."""

    run: RunScore
    summary: dict[str, Any]
    paths: dict[str, Path]
    fail_below: str

    @property
    def passed(self) -> bool:
        """Every model held its gateways and reached ``fail_below``."""
        return self.run.passes(self.fail_below)

    @property
    def exit_code(self) -> int:
        """0 when passed, 1 otherwise."""
        return int(ExitCode.OK if self.passed else ExitCode.FALSIFIED)


def check_grade(grade: str) -> str:
    """Validate a ``--fail-below`` grade (case-insensitive) and return its canonical form."""
    names = {g.lower(): g for _, g in GRADES}
    canonical = names.get(grade.strip().lower())
    if canonical is None:
        choices = ", ".join(g for _, g in GRADES)
        raise UsageError(f"--fail-below: unknown grade {grade!r} (choose from {choices})")
    return canonical


def render_reports(
    records: Iterable[Record],
    output_dir: Path,
    *,
    playbooks: Iterable[Path] = (),
    fail_below: str = "C",
    warnings: Iterable[str] = (),
) -> RenderResult:
    """Score ``records`` and write every report into ``output_dir``.

    ``playbooks`` (the run's playbook files) is accepted for the ``run`` command's
    convenience; every record already names its playbook and its sha256, which is
    what the reports show, so re-rendering from evidence alone gives the same files.
    ``warnings`` (e.g. from :func:`apr_qa.evidence.read_evidence`) appear in every report.
    """
    from apr_qa.report.html import write_html
    from apr_qa.report.junit import write_junit
    from apr_qa.report.markdown import job_summary, pr_comment
    from apr_qa.report.summary import summary_json, write_summary

    fail_below = check_grade(fail_below)
    scored = score(records)
    run = RunScore(scored.models, (*warnings, *scored.warnings))
    _ = tuple(playbooks)  # the reports take path and sha256 from the records themselves
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{output_dir}: cannot create the report directory ({exc.strerror})"
        ) from exc
    paths = {name: output_dir / file for name, file in REPORT_FILES.items()}
    document = summary_json(run, fail_below=fail_below)
    write_summary(document, paths["summary"])
    write_junit(run, paths["junit"])
    write_html(run, paths["html"], fail_below=fail_below)
    paths["markdown"].write_text(
        job_summary(run, fail_below=fail_below), encoding="utf-8", errors="replace"
    )
    paths["comment"].write_text(
        pr_comment(run, fail_below=fail_below), encoding="utf-8", errors="replace"
    )
    return RenderResult(run, document, paths, fail_below)
