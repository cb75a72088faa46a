"""JUnit XML: one testsuite per model × playbook, one testcase per check.

CI tools (GitHub test reporters, Jenkins, GitLab) read this; ``file`` and ``line``
point at the playbook line of the scenario so annotations land on it.

The file stays a size CI tools will open: each text of a testcase (output,
details, message) keeps at most ``MAX_CASE_BYTES``, with a note that it was
cut and the output's sha256; once the file would pass ``MAX_FILE_BYTES``,
later texts are replaced by a note pointing at the evidence. Every check keeps
its testcase and its verdict either way (so only a run of more than about
40,000 checks can pass the bound, by its testcases alone).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path
from xml.sax.saxutils import escape

from apr_qa.evidence import Outcome, Record
from apr_qa.report.visible import visible
from apr_qa.score import ModelScore, RunScore

__all__ = [
    "MAX_CASE_BYTES",
    "MAX_FILE_BYTES",
    "clean_xml",
    "junit_string",
    "testcase_names",
    "write_junit",
]

MAX_CASE_BYTES = 8 * 1024
"""At most this much of each text of a testcase (UTF-8 bytes, before XML escaping)."""
MAX_FILE_BYTES = 20 * 1024 * 1024
"""The file's bound: past it, texts become a note."""
# Room kept for each testcase's own markup (names, cell, file, attributes, notes):
# measured at about 340 bytes a case; the texts get what is left.
_CASE_MARKUP_BYTES = 512

# XML 1.0 allows tab, LF, CR and the ranges below; what visible() leaves outside them
# (U+FFFE, U+FFFF) is dropped.
_ILLEGAL_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean_xml(text: str | None) -> str | None:
    """Text XML 1.0 can hold: control characters and lone surrogates shown as visible
    escapes (``\\x1b``), the two non-characters U+FFFE and U+FFFF dropped."""
    if text is None:
        return None
    return _ILLEGAL_XML.sub("", visible(text))


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


class _Budget:
    """What is left of the file's text budget; each text is cut, then charged."""

    def __init__(self, limit: int, texts: int) -> None:
        self.limit = limit
        self.left = texts

    def fit(self, text: str | None, record: Record, what: str) -> str | None:
        """``text`` made XML-safe, cut to MAX_CASE_BYTES, or a note once the budget is spent."""
        if text is None:
            return None
        text = _cut(clean_xml(text) or "", record, what)
        cost = len(escape(text).encode("utf-8"))
        if cost > self.left:
            bound = _size(self.limit)
            return f"[{what} omitted: junit.xml reached its {bound} bound; {_full(record)}]"
        self.left -= cost
        return text


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


def _full(record: Record) -> str:
    """Where the whole output is: the evidence record, and its hash."""
    where = f"record {record.record_id} in evidence.jsonl"
    if record.output is None:
        return where
    digest = (
        record.output_sha256
        or hashlib.sha256(record.output.encode("utf-8", "surrogatepass")).hexdigest()
    )
    chars = record.output_chars if record.output_chars is not None else len(record.output)
    return f"{where}; output of {chars} chars, output_sha256 {digest}"


def _cut(text: str, record: Record, what: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_CASE_BYTES:
        return text
    kept = data[:MAX_CASE_BYTES].decode("utf-8", "ignore")
    return (
        f"{kept}\n… [{what} cut at {_size(MAX_CASE_BYTES)} of {len(data)} bytes; {_full(record)}]"
    )


def _details(record: Record) -> str:
    parts = [f"reason: {record.reason}"]
    if record.counterexample:
        parts.append(f"counterexample: {record.counterexample}")
    if record.expected is not None:
        parts.append(f"expected: {record.expected}")
    if record.output is not None:
        parts.append(f"output: {record.output}")
    return "\n".join(parts)


def _suites(model: ModelScore, budget: _Budget) -> list[object]:
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
                stdout=budget.fit(record.output, record, "output"),
                timestamp=record.timestamp or None,
                file=clean_xml(scenario.file) if scenario else None,
                line=str(scenario.line) if scenario and scenario.line else None,
            )
            message = budget.fit(f"{record.outcome}: {record.reason}", record, "message")
            if record.outcome is Outcome.FALSIFIED:
                details = budget.fit(_details(record), record, "details")
                case.add_failure_info(message, details, "falsified")
            elif record.outcome in (Outcome.TIMEOUT, Outcome.CRASHED):
                details = budget.fit(_details(record), record, "details")
                case.add_error_info(message, details, str(record.outcome))
            elif record.outcome is Outcome.SKIPPED:
                case.add_skipped_info(budget.fit(record.reason, record, "reason"))
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


def junit_string(run: RunScore, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The JUnit XML document for every model in the run, within ``max_bytes`` (see the
    module's doc for what is cut and what is always kept)."""
    from junit_xml import to_xml_report_string

    cases = sum(len(m.records) for m in run.models)
    budget = _Budget(max_bytes, max(0, max_bytes - _CASE_MARKUP_BYTES * cases))
    suites = [s for m in run.models for s in _suites(m, budget)]
    text: str = to_xml_report_string(suites, prettyprint=True, encoding="utf-8")
    return text


def write_junit(run: RunScore, path: Path) -> Path:
    """Write junit.xml."""
    path.write_text(junit_string(run), encoding="utf-8", errors="replace")
    return path
