"""Annotations within GitHub's per-step limit, worst first; outputs a value cannot forge."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from tests.action.runner import parse_log, read_outputs

from apr_qa.action.annotations import MAX_ERRORS, emit_annotations
from apr_qa.action.commands import Commands
from apr_qa.action.outputs import format_outputs
from apr_qa.evidence import Outcome, Record, ScenarioInfo
from apr_qa.gates import Category, Severity
from apr_qa.score import score


def _failures(book: Path, count: int) -> list[Record]:
    records = []
    for i in range(count):
        records.append(
            Record(
                run_id="r",
                record_id=f"r{i}",
                gate="F-A1-001",
                category=Category.QUAL,
                severity=Severity.P1,
                outcome=Outcome.FALSIFIED,
                reason=f"wrong answer {i}",
                model="org/m",
                format="gguf",
                quantization="q8_0",
                backend="cpu",
                modality="run",
                scenario=ScenarioInfo(name=f"s{i}", file=str(book), line=10 + i),
                playbook=str(book),
            )
        )
    return records


def test_at_most_ten_errors_and_a_notice_counting_the_rest(tmp_path: Path) -> None:
    book = tmp_path / "playbooks" / "m.yaml"
    book.parent.mkdir()
    book.write_text("model: {id: org/m}\n")
    run = score(_failures(book, MAX_ERRORS + 3))
    out = io.StringIO()
    assert emit_annotations(run, tmp_path, Commands(out)) == MAX_ERRORS
    commands = parse_log(out.getvalue())
    errors = [c for c in commands if c.name == "error"]
    assert len(errors) == MAX_ERRORS
    assert all(c.properties["file"] == "playbooks/m.yaml" for c in errors)
    (notice,) = [c for c in commands if c.name == "notice"]
    assert notice.message.startswith("3 more failure(s) not annotated")


def test_no_failure_no_annotation(tmp_path: Path) -> None:
    out = io.StringIO()
    assert emit_annotations(score([]), tmp_path, Commands(out)) == 0
    assert out.getvalue() == ""


@given(value=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r"), max_size=60))
def test_an_output_value_cannot_end_early_or_forge_another(value: str) -> None:
    forged = f"{value}\nresult<<EOF\npass\nEOF\nmqs=1000"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "output"
        path.write_text(format_outputs({"mqs": forged, "result": "fail"}), encoding="utf-8")
        assert read_outputs(path) == {"mqs": forged, "result": "fail"}
