"""The per-tensor view of the reports: the worst tensors of the differential records,
worst first, in Markdown and HTML, with every name escaped."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from scoring_records import gateways_passed, rec

from apr_qa.checks.fingerprint import judge
from apr_qa.evidence import Outcome, Record
from apr_qa.fixtures import fixture_path
from apr_qa.models.fingerprint import fingerprint
from apr_qa.report.html import html_string
from apr_qa.report.markdown import job_summary
from apr_qa.report.tensors import tensor_lines
from apr_qa.score import score
from apr_qa.testing.mutants import build_mutant

XSS = "model.<script>alert(1)</script>|`x`.weight"


def _records(tmp_path: Path) -> list[Record]:
    """The stats records of the noise-drift mutant against the clean reference, as the
    artifact stage writes them, and one tensor named to break out of a table or page."""
    mutant = build_mutant("noise-drift", fixture_path("tiny-qa"), tmp_path)
    findings = judge(fingerprint(mutant), fingerprint(fixture_path("tiny-qa")))
    records = [
        dataclasses.replace(
            rec(f.gate, f.outcome, reason=f.reason, fmt="safetensors", quant="f32", scenario=None),
            expected=f.expected,
        )
        for f in findings
    ]
    hostile = {"tensor": XSS, "dtype": "f32", "measure": "m", "value": 50.0, "tolerance": 0.15}
    records.append(
        dataclasses.replace(
            rec("F-ROSETTA-DIFF-003", Outcome.FALSIFIED, scenario=None),
            expected={
                "worst_tensors": [
                    hostile,
                    {"tensor": "broken", "value": "x"},
                    {"tensor": "nan.weight", "value": None, "tolerance": 1e-6},
                ]
            },
        )
    )
    return records


def test_worst_tensors_come_first(tmp_path: Path) -> None:
    lines = tensor_lines(_records(tmp_path))
    assert lines and all(a.ratio >= b.ratio for a, b in itertools.pairwise(lines))
    assert lines[0].tensor == "nan.weight" and lines[0].beyond  # not a number: the worst
    assert lines[1].tensor == XSS and lines[1].beyond  # 50 of 0.15: worse than the drift's 10x
    assert "broken" not in {t.tensor for t in lines}  # a malformed row is left out
    drifted = [t for t in lines if t.gate in ("F-ROSETTA-STATS-003", "F-ROSETTA-STATS-004")]
    assert drifted and all(t.beyond for t in drifted)


def test_markdown_and_html_show_the_view_escaped(tmp_path: Path) -> None:
    run = score([*gateways_passed(), *_records(tmp_path)])
    md = job_summary(run)
    assert "#### Worst tensors" in md
    assert "<script>" not in md and "\\<script\\>" in md and "\\|" in md
    assert "model.layers.0.mlp" in md and "❌" in md
    page = html_string(run)
    assert "<h2>Worst tensors</h2>" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page


def test_no_view_without_tensor_records() -> None:
    run = score(gateways_passed())
    assert "Worst tensors" not in job_summary(run)
    assert "Worst tensors" not in html_string(run)


def test_tensor_diff_rows_are_strict_json_and_nan_ranks_first() -> None:
    import json

    from apr_qa.checks.tensor_diff import TensorRow, worst_tensors

    rows = [
        TensorRow("a.weight", "blk.a", "q8_0", 0.01, 0.004, 0.999, 0.02),
        TensorRow("b.weight", "blk.b", "f32", float("nan"), float("nan"), float("nan"), 1e-6),
    ]
    worst = worst_tensors(rows)
    json.dumps(worst, allow_nan=False)  # evidence lines are strict JSON
    assert [r["tensor"] for r in worst] == ["b.weight", "a.weight"]
    assert worst[0]["value"] is None and worst[1]["value"] == 0.004
