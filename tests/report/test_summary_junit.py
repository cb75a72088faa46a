"""summary.json against its schema; junit.xml read back with independent readers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fixture_runs import XSS, clean_run, mutant_run
from jsonschema import Draft202012Validator
from junitparser import Error, Failure, JUnitXml, Skipped

from apr_qa.report import render_reports
from apr_qa.report.summary import summary_schema


@pytest.fixture(params=["clean", "mutant", "both"])
def rendered(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    records = {"clean": clean_run, "mutant": mutant_run}.get(request.param)
    recs = records() if records else clean_run() + mutant_run()
    return render_reports(recs, tmp_path / "out"), recs


def test_summary_validates_against_the_shipped_schema(rendered) -> None:  # type: ignore[no-untyped-def]
    result, _ = rendered
    document = json.loads(result.paths["summary"].read_text("utf-8"))
    Draft202012Validator.check_schema(summary_schema())
    errors = list(Draft202012Validator(summary_schema()).iter_errors(document))
    assert errors == []


def test_junit_counts_equal_summary_counts(rendered) -> None:  # type: ignore[no-untyped-def]
    result, records = rendered
    summary = json.loads(result.paths["summary"].read_text("utf-8"))
    xml = JUnitXml.fromfile(str(result.paths["junit"]))
    per_model: dict[str, dict[str, int]] = {}
    for suite in xml:
        props = {p.name: p.value for p in suite.properties()}
        model = next(m for m in summary["models"] if suite.name.startswith(m["model"]))
        assert (int(props["mqs"]), props["grade"], props["status"]) == (
            model["mqs"],
            model["grade"],
            model["status"],
        )
        counts = per_model.setdefault(
            model["model"], {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        )
        for case in suite:
            counts["tests"] += 1
            kinds = {type(r) for r in case.result}
            counts["failures"] += Failure in kinds
            counts["errors"] += Error in kinds
            counts["skipped"] += Skipped in kinds
    for model in summary["models"]:
        c = model["counts"]
        assert per_model[model["model"]] == {
            "tests": c["total"],
            "failures": c["falsified"],
            "errors": c["timeout"] + c["crashed"],
            "skipped": c["skipped"],
        }
    assert sum(m["counts"]["total"] for m in summary["models"]) == len(records)


def test_junit_structure_names_and_locations(tmp_path: Path) -> None:
    result = render_reports(mutant_run(), tmp_path)
    root = ET.parse(result.paths["junit"]).getroot()
    assert root.tag == "testsuites"
    assert int(root.get("tests")) == len(mutant_run())
    names: dict[str, list[str]] = {}
    for case in root.iter("testcase"):
        names.setdefault(case.get("classname"), []).append(case.get("name"))
    for classname, ns in names.items():
        assert len(ns) == len(set(ns)), classname
    cell = "org/mutant.gguf.q4_k_m.cpu.run"
    assert {"F-A1-001 arith-2+2", "F-A1-001 arith-2+2 #2"} <= set(names[cell])
    arith = [
        c
        for c in root.iter("testcase")
        if c.get("classname") == cell and c.get("name").startswith("F-A1-001 arith")
    ]
    failing = next(c for c in arith if c.find("failure") is not None)
    assert (failing.get("file"), failing.get("line")) == ("playbooks/tiny.yaml", "21")
    text = ET.tostring(failing, encoding="unicode")
    assert "\x00" not in text and "\x1b" not in text
    assert XSS in failing.find("system-out").text  # kept as text, escaped by the XML writer
    skipped = next(c for c in root.iter("testcase") if c.find("skipped") is not None)
    assert skipped.find("skipped").get("message").startswith("not run: stop-on-p0")
    error_types = sorted(e.get("type") for e in root.iter("error"))
    assert error_types == ["crashed", "timeout"]
