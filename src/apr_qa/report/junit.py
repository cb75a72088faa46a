"""JUnit XML: one testsuite per model × playbook, one testcase per check.

CI tools (GitHub test reporters, Jenkins, GitLab) read this; ``file`` and ``line``
point at the playbook line of the scenario so annotations land on it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from apr_qa.evidence import Outcome, Record
from apr_qa.score import ModelScore, RunScore

__all__ = ["clean_xml", "junit_string", "testcase_names", "write_junit"]

# XML 1.0 allows tab, LF, CR and the ranges below; everything else is dropped.
_ILLEGAL_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean_xml(text: str | None) -> str | None:
    """Drop characters XML 1.0 cannot hold (control characters, lone surrogates)."""
    if text is None:
        return None
    return _ILLEGAL_XML.sub("", text)


def _case_name(record: Record) -> str:
    if record.scenario is not None and record.scenario.name:
        return f"{record.gate} {record.scenario.name}"
    return record.gate


def testcase_names(records: list[Record]) -> dict[tuple[str, str], str]:
    """A name per (run_id, record_id), unique within its classname (``#2``, ``#3`` on repeats).

    Records are named in (cell, name, record_id) order so the numbering is stable.
    """
    taken: dict[str, set[str]] = defaultdict(set)
    names: dict[tuple[str, str], str] = {}
    for record in sorted(records, key=lambda r: (r.cell, _case_name(r), r.record_id)):
        base = clean_xml(_case_name(record)) or record.gate
        name, n = base, 1
        while name in taken[record.cell]:
            n += 1
            name = f"{base} #{n}"
        taken[record.cell].add(name)
        names[(record.run_id, record.record_id)] = name
    return names


def _details(record: Record) -> str:
    parts = [f"reason: {record.reason}"]
    if record.counterexample:
        parts.append(f"counterexample: {record.counterexample}")
    if record.expected is not None:
        parts.append(f"expected: {record.expected}")
    if record.output is not None:
        parts.append(f"output: {record.output}")
    return "\n".join(parts)


def _suites(model: ModelScore) -> list[object]:
    from junit_xml import TestCase, TestSuite

    by_playbook: dict[str, list[Record]] = defaultdict(list)
    for record in model.records:
        by_playbook[record.playbook or ""].append(record)
    suites: list[object] = []
    for playbook in sorted(by_playbook):
        records = by_playbook[playbook]
        names = testcase_names(records)
        cases = []
        for record in sorted(records, key=lambda r: (r.cell, names[(r.run_id, r.record_id)])):
            scenario = record.scenario
            case = TestCase(
                names[(record.run_id, record.record_id)],
                classname=clean_xml(record.cell),
                elapsed_sec=float(record.metrics.get("duration_s", 0.0)),
                stdout=clean_xml(record.output),
                timestamp=record.timestamp or None,
                file=clean_xml(scenario.file) if scenario else None,
                line=str(scenario.line) if scenario and scenario.line else None,
            )
            message = clean_xml(f"{record.outcome}: {record.reason}")
            if record.outcome is Outcome.FALSIFIED:
                case.add_failure_info(message, clean_xml(_details(record)), "falsified")
            elif record.outcome in (Outcome.TIMEOUT, Outcome.CRASHED):
                case.add_error_info(message, clean_xml(_details(record)), str(record.outcome))
            elif record.outcome is Outcome.SKIPPED:
                case.add_skipped_info(clean_xml(record.reason))
            cases.append(case)
        sha = next((r.playbook_sha256 for r in records if r.playbook_sha256), None)
        properties = {
            "mqs": str(model.mqs),
            "grade": model.grade,
            "status": model.status,
            "playbook": clean_xml(playbook) or "",
            "playbook_sha256": sha or "",
        }
        if model.stands_in_for:
            properties["stands_in_for"] = clean_xml(", ".join(model.stands_in_for)) or ""
        name = f"{model.model} ({playbook})" if playbook else model.model
        suites.append(
            TestSuite(clean_xml(name), cases, properties=properties, package=clean_xml(model.model))
        )
    return suites


def junit_string(run: RunScore) -> str:
    """The JUnit XML document for every model in the run."""
    from junit_xml import to_xml_report_string

    suites = [s for m in run.models for s in _suites(m)]
    text: str = to_xml_report_string(suites, prettyprint=True, encoding="utf-8")
    return text


def write_junit(run: RunScore, path: Path) -> Path:
    """Write junit.xml."""
    path.write_text(junit_string(run), encoding="utf-8", errors="replace")
    return path
