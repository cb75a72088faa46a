"""Step outputs: computed from the scored run, written to ``$GITHUB_OUTPUT``.

Every value is written in the heredoc form (``name<<DELIMITER``) with a random
delimiter, so a value holding newlines, or a line that looks like another
output, cannot end it early or forge a second output.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from apr_qa.evidence import Outcome
from apr_qa.score import RunScore, grade_rank

__all__ = ["OUTPUT_NAMES", "format_outputs", "run_outputs", "write_outputs"]

OUTPUT_NAMES = (
    "mqs",
    "grade",
    "status",
    "gateways",
    "passed",
    "failed",
    "regressions",
    "report-dir",
    "junit-path",
    "summary-path",
    "evidence-path",
    "result",
)
"""Every output the Action sets (action.yml declares the same; a test holds them equal)."""

_FAILED = (Outcome.FALSIFIED, Outcome.TIMEOUT, Outcome.CRASHED)


def run_outputs(
    run: RunScore, *, passed: bool, report_dir: Path, files: Mapping[str, Path]
) -> dict[str, str]:
    """The outputs of a scored run. With several models, ``mqs`` and ``grade`` are the
    lowest (what a later step gating on them must see) and ``status`` the worst."""
    models = run.models
    counts = {o: sum(m.counts.get(str(o), 0) for m in models) for o in Outcome}
    regressions = 0
    from apr_qa.report.summary import baseline_section

    for model in models:
        section = baseline_section(model)
        if section is not None:
            regressions += int(section.get("counts", {}).get("regressed", 0))
    worst = min(models, key=lambda m: (m.mqs, grade_rank(m.grade)), default=None)
    return {
        "mqs": str(worst.mqs) if worst else "",
        "grade": worst.grade if worst else "",
        "status": str(run.status),
        "gateways": "failed" if any(m.gateway_failed for m in models) else "passed",
        "passed": str(counts[Outcome.CORROBORATED]),
        "failed": str(sum(counts[o] for o in _FAILED)),
        "regressions": str(regressions),
        "report-dir": str(report_dir),
        "junit-path": str(files.get("junit", "")),
        "summary-path": str(files.get("summary", "")),
        "evidence-path": str(report_dir / "evidence.jsonl"),
        "result": "pass" if passed else "fail",
    }


def format_outputs(outputs: Mapping[str, str]) -> str:
    """The ``$GITHUB_OUTPUT`` text: one heredoc per output, each with a fresh delimiter
    that occurs in no value."""
    parts = []
    for name, value in outputs.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in value:  # pragma: no cover - 128 random bits
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(parts)


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append the outputs to the runner's output file."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(format_outputs(outputs))
