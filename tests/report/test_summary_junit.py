"""summary.json against its schema; junit.xml read back with independent readers."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fixture_runs import XSS, clean_run, mutant_run
from jsonschema import Draft202012Validator
from junitparser import Error, Failure, JUnitXml, Skipped
from scoring_records import gateways_passed, rec

from apr_qa.evidence import Outcome
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


def test_a_five_megabyte_output_is_cut_in_junit_with_its_hash(tmp_path: Path) -> None:
    # A record held in memory (or written by another tool) may carry a whole output.
    output = "ramble " * 750_000  # 5.25 MB
    digest = hashlib.sha256(output.encode()).hexdigest()
    records = [*gateways_passed(), rec("F-A1-001", Outcome.FALSIFIED, output=output)]
    result = render_reports(records, tmp_path)
    path = result.paths["junit"]
    assert path.stat().st_size < 64 * 1024
    (case,) = [
        c for c in ET.parse(path).getroot().iter("testcase") if c.get("name") == "F-A1-001 s"
    ]
    out = case.find("system-out")
    failure = case.find("failure")
    assert out is not None and failure is not None
    for text in (out.text or "", failure.text or ""):
        assert "cut at 8 KiB" in text and digest in text and f"{len(output)} chars" in text
    assert (out.text or "").startswith("ramble ramble")


def test_junit_stays_within_its_bound_and_says_what_it_omitted(tmp_path: Path) -> None:
    # 3,000 failures with 4 KiB outputs (the most evidence keeps) would be about 25 MiB.
    records = [*gateways_passed()] + [
        rec("F-A1-001", Outcome.FALSIFIED, output=f"y{i:05d} " * 585, scenario=f"s{i}")
        for i in range(3000)
    ]
    path = render_reports(records, tmp_path).paths["junit"]
    assert path.stat().st_size <= 20 * 1024 * 1024
    cases = list(ET.parse(path).getroot().iter("testcase"))
    assert len(cases) == len(records)  # every check keeps its testcase and verdict
    assert sum(1 for c in cases if c.find("failure") is not None) == 3000
    outputs = [c.find("system-out") for c in cases]
    texts = [o.text or "" for o in outputs if o is not None]
    omitted = [t for t in texts if "omitted: junit.xml reached its 20 MiB bound" in t]
    kept = [t for t in texts if t.startswith("y")]
    assert omitted and kept and len(omitted) + len(kept) == 3000
    assert all("output_sha256" in t for t in omitted)
