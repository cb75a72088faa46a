"""The worked examples of docs/scoring.md, read from the doc and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from scoring_records import GATEWAY_GATE, category_records, rec

from apr_qa.evidence import Outcome, Record
from apr_qa.score import score

DOC = Path(__file__).resolve().parents[2] / "docs" / "scoring.md"
ROW = re.compile(r"^\| (QUAL|PERF|STAB|COMP|EDGE|REGR) \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \|$")
RESULT = re.compile(r"^Result: \*\*MQS (\d+), grade ([A-F]\+?), (\w+)\*\*$")
FAILED_ORDER = (Outcome.TIMEOUT, Outcome.CRASHED, Outcome.FALSIFIED)


@dataclass
class Example:
    title: str
    rows: list[tuple[str, int, int, int, float]]
    gateways: str
    mqs: int
    grade: str
    status: str


def _examples() -> list[Example]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Worked examples", 1)[1].split("\n## ", 1)[0]
    examples = []
    for chunk in section.split("\n### ")[1:]:
        lines = chunk.splitlines()
        rows = [
            (m[1], int(m[2]), int(m[3]), int(m[4]), float(m[5]))
            for line in lines
            if (m := ROW.match(line))
        ]
        gateways = next(line for line in lines if line.startswith("Gateways: "))
        result = next(m for line in lines if (m := RESULT.match(line)))
        examples.append(Example(lines[0], rows, gateways, int(result[1]), result[2], result[3]))
    return examples


EXAMPLES = _examples()


def _gateway_records(spec: str) -> list[Record]:
    records = []
    for gateway, gate in GATEWAY_GATE.items():
        if f"{gateway} not recorded" in spec:
            continue
        if "all skipped" in spec:
            outcome = Outcome.SKIPPED
        elif f"{gateway} failed" in spec:
            outcome = Outcome.FALSIFIED
        else:
            outcome = Outcome.CORROBORATED
        records.append(rec(gate, outcome, scenario=None))
    return records


def test_the_doc_has_its_examples() -> None:
    assert len(EXAMPLES) == 7
    assert all(len(e.rows) == 6 for e in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.title for e in EXAMPLES])
def test_worked_example(example: Example) -> None:
    records = _gateway_records(example.gateways)
    for category, passed, executed, skipped, _ in example.rows:
        records += category_records(category, passed, executed, skipped, failed_as=FAILED_ORDER)
    (model,) = score(records).models
    assert (model.mqs, model.grade, model.status) == (example.mqs, example.grade, example.status)
    by_name = {c.category: c for c in model.categories}
    for category, passed, executed, skipped, points in example.rows:
        got = by_name[category]
        assert (got.passed, got.executed, got.skipped) == (passed, executed, skipped)
        assert float(got.points) == pytest.approx(points, abs=0.05)
        assert got.assessed == (executed > 0)
