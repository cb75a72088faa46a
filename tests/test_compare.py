"""Comparing two runs by stable check key, and F-REGR-BASE against a baseline, on
evidence written here (the real runs are tests/test_regression_runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from apr_qa.baseline import read_run
from apr_qa.checks.baseline import BaselineRegression
from apr_qa.cli import cli
from apr_qa.compare import Change, compare_records
from apr_qa.errors import UsageError
from apr_qa.evidence import EvidenceWriter, Outcome, Record, ScenarioInfo
from apr_qa.execute.records import CellRef, RecordFactory
from apr_qa.merge import merge
from apr_qa.playbook import load_playbook
from apr_qa.report import render_reports
from apr_qa.report.summary import summary_schema
from apr_qa.score import score_model

OK, BAD, SKIP = Outcome.CORROBORATED, Outcome.FALSIFIED, Outcome.SKIPPED


def _records(
    run: str, outcomes: dict[str, Outcome], model: str = "m", factory: RecordFactory | None = None
) -> list[Record]:
    """One scenario record per name, plus a G1 load record, as a run of ``model`` writes them."""
    factory = factory or RecordFactory(run)
    cell = CellRef(model, "gguf", "q8_0", "cpu", "run")
    out = [factory.make("G1-LOAD-001", OK, "loaded", cell)]
    for name, outcome in outcomes.items():
        scenario = ScenarioInfo(name=name, id=f"book/gguf/cpu/run#{name}")
        out.append(factory.make("F-A1-001", outcome, f"{name} {outcome}", cell, scenario=scenario))
    return out


def _write(path: Path, records: list[Record]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with EvidenceWriter(path) as writer:
        writer.write_all(records)
    return path


BEFORE = {"a": OK, "b": OK, "c": BAD, "d": BAD, "e": OK, "gone": OK}
AFTER = {"a": OK, "b": BAD, "c": OK, "d": BAD, "e": SKIP, "fresh": BAD}


def test_every_check_is_classified_by_key() -> None:
    cmp = compare_records(_records("r1", BEFORE), _records("r2", AFTER))
    by_name = {c.record.scenario.name: c.change for c in cmp.changes if c.record.scenario}
    assert by_name == {
        "a": Change.STILL_PASSING,
        "b": Change.REGRESSED,
        "c": Change.FIXED,
        "d": Change.STILL_FAILING,
        "e": Change.NOT_COMPARED,
        "fresh": Change.NEW,
        "gone": Change.REMOVED,
    }
    # New and removed checks are never regressions, even a new failing one.
    assert [c.record.scenario.name for c in cmp.regressed if c.record.scenario] == ["b"]
    delta = cmp.models[0]
    assert delta.before is not None and delta.after is not None
    # QUAL: 4 of 6 passed before, 2 of 5 now (e skipped; gone and fresh count on their side).
    assert delta.before.categories["QUAL"] == 133.33 and delta.after.categories["QUAL"] == 80.0
    assert delta.mqs_drop == 133 - 80


def test_a_run_compared_with_itself_regresses_nothing() -> None:
    records = _records("r1", AFTER)
    cmp = compare_records(records, list(reversed(records)))
    assert cmp.regressed == () and cmp.counts["new"] == 0 and cmp.counts["removed"] == 0


def test_order_of_records_does_not_matter() -> None:
    before, after = _records("r1", BEFORE), _records("r2", AFTER)
    one = compare_records(before, after)
    two = compare_records(list(reversed(before)), list(reversed(after)))
    assert [(c.key, c.change) for c in one.changes] == [(c.key, c.change) for c in two.changes]


def test_a_renamed_single_model_is_paired_with_a_note() -> None:
    cmp = compare_records(_records("r1", BEFORE), _records("r2", AFTER, model="m-pr"))
    assert len(cmp.regressed) == 1
    assert cmp.notes and "m-pr" in cmp.notes[0]
    # With a second model in the baseline, nothing pairs by guesswork.
    two = _records("r1", BEFORE) + _records("r0", BEFORE, model="other")
    cmp = compare_records(two, _records("r2", AFTER, model="m-pr"))
    assert cmp.regressed == () and cmp.counts["new"] == len(AFTER) + 1


def _book(tmp: Path, regression: str) -> Path:
    path = tmp / "book.yaml"
    path.write_text(
        "name: book\nmodel: {id: m, path: .}\n"
        "scenarios:\n  - {name: a, prompt: hi, oracle: contains, value: x}\n"
        f"regression: {regression}\n"
    )
    return path


def test_baseline_check_falsifies_a_regression_and_corroborates_none(tmp_path: Path) -> None:
    _write(tmp_path / "base" / "evidence.jsonl", _records("r1", BEFORE))
    book = load_playbook(_book(tmp_path, "{baseline: base, max_mqs_drop: 100}"))
    check = BaselineRegression()
    worse = {f.gate: f for f in check.check(_records("r2", AFTER), book)}
    assert worse["F-REGR-BASE-001"].passed is False
    assert "1 check(s) regressed" in worse["F-REGR-BASE-001"].reason
    assert worse["F-REGR-BASE-002"].passed is True  # 133 -> 80: a drop of 53 of 100 allowed
    same = {f.gate: f for f in check.check(_records("r3", BEFORE), book)}
    assert same["F-REGR-BASE-001"].passed is True
    assert same["F-REGR-BASE-002"].passed is True
    strict = load_playbook(_book(tmp_path, "{baseline: base, max_mqs_drop: 52}"))
    mqs = {f.gate: f for f in check.check(_records("r2", AFTER), strict)}
    assert (
        mqs["F-REGR-BASE-002"].passed is False and "a drop of 53" in mqs["F-REGR-BASE-002"].reason
    )


def test_max_regressions_allows_that_many(tmp_path: Path) -> None:
    _write(tmp_path / "base" / "evidence.jsonl", _records("r1", BEFORE))
    book = load_playbook(_book(tmp_path, "{baseline: base, max_regressions: 1}"))
    found = {f.gate: f for f in BaselineRegression().check(_records("r2", AFTER), book)}
    assert found["F-REGR-BASE-001"].passed is True
    assert found["F-REGR-BASE-002"].passed is None  # no max_mqs_drop: figures, no verdict


def test_no_baseline_records_nothing_and_a_disjoint_one_is_skipped(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: b\nmodel: {id: m, path: .}\n")
    assert list(BaselineRegression().check(_records("r2", AFTER), load_playbook(plain))) == []
    _write(tmp_path / "base" / "evidence.jsonl", _records("r1", {"zzz": OK}, model="x"))
    _write(tmp_path / "base" / "more.jsonl", _records("r1", {"zzz": OK}, model="y"))
    book = load_playbook(_book(tmp_path, "{baseline: base/evidence.jsonl}"))
    # One model in that file, so it pairs; but no scenario key is shared beyond G1.
    found = {f.gate: f for f in BaselineRegression().check(_records("r2", AFTER), book)}
    assert found["F-REGR-BASE-001"].passed is True
    assert found["F-REGR-BASE-001"].expected["counts"]["new"] == len(AFTER)  # type: ignore[index]


def test_a_regression_fails_ci_whatever_the_grade(tmp_path: Path) -> None:
    _write(tmp_path / "base" / "evidence.jsonl", _records("r1", BEFORE))
    book = load_playbook(_book(tmp_path, "{baseline: base}"))
    factory = RecordFactory("r2")
    records = _records("r2", AFTER, factory=factory)
    for finding in BaselineRegression().check(records, book):
        records.append(
            factory.make(
                finding.gate,
                finding.outcome,
                finding.reason,
                CellRef("m"),
                expected=finding.expected,
            )
        )
    model = score_model("m", records)
    assert model.regressed and not model.passes("F")
    rendered = render_reports(records, tmp_path / "out", fail_below="F")
    assert rendered.exit_code == 1
    Draft202012Validator(summary_schema()).validate(rendered.summary)
    section = rendered.summary["models"][0]["baseline"]
    assert (
        section["counts"]["regressed"] == 1 and section["regressed"][0]["before"] == "corroborated"
    )
    assert "Compared with baseline" in (tmp_path / "out" / "summary.md").read_text()
    fixed = [c for c in section["fixed"] if c["scenario"] == "c"]
    assert fixed and fixed[0]["after"] == "corroborated"


def test_merging_shards_recompares_their_union_with_the_baseline(tmp_path: Path) -> None:
    base = _write(tmp_path / "base" / "evidence.jsonl", _records("r1", BEFORE))
    book = load_playbook(_book(tmp_path, "{baseline: base}"))
    shards: list[Record] = []
    for run, names in (("s1", ("a", "b", "c")), ("s2", ("d", "e", "fresh"))):
        factory = RecordFactory(run)
        mine = _records(run, {n: AFTER[n] for n in names}, factory=factory)
        mine = [r for r in mine if r.gate != "G1-LOAD-001" or run == "s1"]
        for finding in BaselineRegression().check(mine, book):
            mine.append(
                factory.make(
                    finding.gate,
                    finding.outcome,
                    finding.reason,
                    CellRef("m"),
                    expected=finding.expected,
                    metrics=finding.metrics,
                )
            )
        shards += mine
    merged = [r for r in merge(shards).records if r.gate == "F-REGR-BASE-001"]
    assert len(merged) == 1 and "re-decided over 2 runs" in merged[0].reason
    assert merged[0].metrics["checks_regressed"] == 1
    assert merged[0].metrics["checks_removed"] == 1  # "gone": neither shard ran it
    # A baseline changed under the shards' feet is not compared again.
    _write(base, _records("r9", {"a": BAD}))
    changed = [r for r in merge(shards).records if r.gate == "F-REGR-BASE-001"]
    assert changed[0].outcome is Outcome.SKIPPED and "changed" in changed[0].reason


def test_read_run_accepts_evidence_directory_and_summary(tmp_path: Path) -> None:
    evidence = _write(tmp_path / "run" / "evidence.jsonl", _records("r1", BEFORE))
    render_reports(read_run(evidence).records or (), tmp_path / "run")
    assert read_run(tmp_path / "run").records == read_run(evidence).records
    assert read_run(tmp_path / "run" / "summary.json").records is not None  # evidence beside it
    evidence.unlink()
    alone = read_run(tmp_path / "run" / "summary.json")
    assert alone.records is None and alone.views[0].mqs == 133
    cmp = compare_records(None, _records("r2", AFTER), before_views=alone.views)
    assert not cmp.checks_compared and cmp.models[0].mqs_drop == 53
    # A folder of shard evidence is one run; a golden file beside it is not evidence.
    shards = tmp_path / "shards"
    _write(shards / "shard-1" / "evidence.jsonl", _records("s1", {"a": OK}))
    second = [r for r in _records("s2", {"b": BAD}) if r.gate != "G1-LOAD-001"]  # ran in s1
    _write(shards / "shard-2" / "evidence.jsonl", second)
    (shards / "golden.jsonl").write_text('{"kind": "apr-qa-golden"}\n')
    both = read_run(shards)
    assert len(both.files) == 2 and both.warnings == ()
    assert {r.scenario.name for r in both.records or () if r.scenario} == {"a", "b"}
    with pytest.raises(UsageError):
        read_run(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(UsageError):
        read_run(tmp_path / "bad.json")


def test_compare_cli_exit_codes_and_forms(tmp_path: Path) -> None:
    before = _write(tmp_path / "a" / "evidence.jsonl", _records("r1", BEFORE))
    after = _write(tmp_path / "b" / "evidence.jsonl", _records("r2", AFTER))
    worse = CliRunner().invoke(cli, ["compare", str(before), str(after), "--json"])
    assert worse.exit_code == 1, worse.output
    document = json.loads(worse.output)
    assert document["counts"]["regressed"] == 1 and document["removed_checks"]
    assert [c["reason_after"] for c in document["regressed_checks"]] == ["b falsified"]
    same = CliRunner().invoke(cli, ["compare", str(before), str(before), "--markdown"])
    assert same.exit_code == 0 and same.output.startswith("### apr-qa compare: ✅")
    missing = CliRunner().invoke(cli, ["compare", str(before), str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such run" in missing.output
