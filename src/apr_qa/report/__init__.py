"""Reports rendered from evidence: summary.json, junit.xml, report.html, Markdown.

Every renderer is a pure function of the :class:`~apr_qa.score.RunScore`, so a
report can be rebuilt from evidence files alone (``apr-qa report``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from apr_qa.errors import ExitCode, UsageError
from apr_qa.evidence import Record
from apr_qa.facts import ModelFacts, latest_facts
from apr_qa.score import GRADES, RunScore, score

__all__ = [
    "RENDERERS",
    "REPORT_FILES",
    "RenderResult",
    "Renderer",
    "check_grade",
    "check_report_paths",
    "render_reports",
    "write_atomic",
]


class Renderer(Protocol):
    """Renders one report from the scored run (a pure function, bytes or text)."""

    def __call__(self, run: RunScore, *, fail_below: str) -> str:
        """The report's whole text."""
        ...


def _summary(run: RunScore, *, fail_below: str) -> str:
    from apr_qa.report.summary import summary_json, summary_text

    return summary_text(summary_json(run, fail_below=fail_below))


def _junit(run: RunScore, *, fail_below: str) -> str:
    from apr_qa.report.junit import junit_string

    return junit_string(run)


def _html(run: RunScore, *, fail_below: str) -> str:
    from apr_qa.report.html import html_string

    return html_string(run, fail_below=fail_below)


def _markdown(run: RunScore, *, fail_below: str) -> str:
    from apr_qa.report.markdown import job_summary

    return job_summary(run, fail_below=fail_below)


def _comment(run: RunScore, *, fail_below: str) -> str:
    from apr_qa.report.markdown import pr_comment

    return pr_comment(run, fail_below=fail_below)


RENDERERS: Mapping[str, tuple[str, Renderer]] = MappingProxyType(
    {
        "summary": ("summary.json", _summary),
        "junit": ("junit.xml", _junit),
        "html": ("report.html", _html),
        "markdown": ("summary.md", _markdown),
        "comment": ("comment.md", _comment),
    }
)
"""Report name -> (file name, renderer). A closed set: a plain mapping, not a registry."""

REPORT_FILES: Mapping[str, str] = MappingProxyType({k: f for k, (f, _) in RENDERERS.items()})


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


def check_report_paths(output_dir: Path) -> None:
    """Refuse, before any work, an output directory the reports could not be written to:
    one that cannot be created, is not writable, or holds a non-file under a report's name."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: exists and is not a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{output_dir}: cannot create the output directory ({exc.strerror or exc})"
        ) from exc
    if not output_dir.is_dir():
        raise UsageError(f"{output_dir}: not a directory")
    for name in (*REPORT_FILES.values(), "evidence.jsonl"):
        path = output_dir / name
        if path.exists() and not path.is_file():
            raise UsageError(
                f"{path}: exists and is not a regular file; the report cannot go there"
            )
    probe = output_dir / f".apr-qa-write-test-{os.getpid()}"
    try:
        with probe.open("wb") as fh:
            fh.write(b"x")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise UsageError(f"{output_dir}: not writable ({exc.strerror or exc})") from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _umask() -> int:
    """The process's umask. Linux reports it in /proc; elsewhere it can only be read by
    setting it, which is safe here: reports are written after the workers' threads."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place, so a
    failed write never leaves half a report (and never the old one half overwritten)."""
    data = text.encode("utf-8", errors="replace")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); a report is read by CI uploads and
        # other users as any new file is, so give it the mode open() would have.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise UsageError(f"{path}: cannot write the report ({exc.strerror or exc})") from exc
    return path


def render_reports(
    records: Iterable[Record],
    output_dir: Path,
    *,
    fail_below: str = "C",
    warnings: Iterable[str] = (),
    facts: Iterable[ModelFacts] = (),
) -> RenderResult:
    """Score ``records`` and write every report of :data:`RENDERERS` into ``output_dir``.

    Every record names its playbook and its sha256, which is what the reports
    show, so re-rendering from evidence alone gives the same files. ``warnings``
    (e.g. from :func:`apr_qa.evidence.read_evidence`) appear in every report; of
    ``facts``, each model's newest reaches summary.json.
    """
    fail_below = check_grade(fail_below)
    scored = score(records)
    run = RunScore(scored.models, (*warnings, *scored.warnings), latest_facts(facts))
    check_report_paths(output_dir)
    paths: dict[str, Path] = {}
    for name, (file, renderer) in RENDERERS.items():
        paths[name] = write_atomic(output_dir / file, renderer(run, fail_below=fail_below))
    from apr_qa.report.summary import summary_json

    return RenderResult(run, summary_json(run, fail_below=fail_below), paths, fail_below)
