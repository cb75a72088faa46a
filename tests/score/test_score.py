"""Scoring: units and the invariants of issue 5 (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scoring_records import CATEGORY_GATE, GATEWAY_GATE, category_records, gateways_passed, rec

from apr_qa.evidence import HaltKind, Outcome, Record
from apr_qa.report.summary import summary_json
from apr_qa.score import Status, grade_for, grade_rank, score

OUTCOMES = list(Outcome)
GATES = [*CATEGORY_GATE.values(), *GATEWAY_GATE.values(), "X-UNKNOWN-001"]


@st.composite
def evidence(draw: st.DrawFn) -> list[Record]:
    """Records over two models, every gate family, every outcome, unique ids."""
    n = draw(st.integers(min_value=0, max_value=40))
    records = []
    for i in range(n):
        records.append(
            rec(
                draw(st.sampled_from(GATES)),
                draw(st.sampled_from(OUTCOMES)),
                model=draw(st.sampled_from(["org/a", "org/b"])),
                backend=draw(st.sampled_from(["cpu", "gpu"])),
                record_id=f"id{i:04d}",
                reason=draw(st.sampled_from(["ok", "halted: stop-on-p0 after G1", "bad"])),
                timestamp=f"2025-01-01T00:00:{draw(st.integers(0, 59)):02d}.000+00:00",
            )
        )
    return records


def _doc(records: list[Record]) -> str:
    return json.dumps(summary_json(score(records)), sort_keys=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evidence(), st.randoms(use_true_random=False))
def test_scoring_is_deterministic_and_order_independent(records: list[Record], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert _doc(records) == _doc(records)
    assert _doc(records) == _doc(shuffled)


@settings(max_examples=60, deadline=None)
@given(records=evidence(), assignment=st.lists(st.integers(0, 3), min_size=40, max_size=40))
def test_merging_shards_gives_the_unsharded_summary(
    records: list[Record], assignment: list[int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from apr_qa.evidence import EvidenceWriter, read_evidence

    tmp = tmp_path_factory.mktemp("shards")
    whole = tmp / "whole.jsonl"
    with EvidenceWriter(whole, fsync=False) as w:
        w.write_all(records)
    shards = [tmp / f"shard{k}.jsonl" for k in range(4)]
    for path in shards:
        path.touch()
    for record, k in zip(records, assignment, strict=False):
        with EvidenceWriter(shards[k], fsync=False, append=True) as w:
            w.write(record)
    unsharded = read_evidence([whole]).records
    merged = read_evidence(shards).records
    assert _doc(merged) == _doc(unsharded) == _doc(records)


@settings(max_examples=80, deadline=None)
@given(
    evidence(),
    st.sampled_from(list(GATEWAY_GATE.values())),
    st.sampled_from([Outcome.FALSIFIED, Outcome.TIMEOUT, Outcome.CRASHED]),
)
def test_mqs_is_zero_whenever_a_gateway_failed(
    records: list[Record], gate: str, outcome: Outcome
) -> None:
    records = [*records, rec(gate, outcome, model="org/a", record_id="failing")]
    a = next(m for m in score(records).models if m.model == "org/a")
    assert (a.mqs, a.grade, a.status) == (0, "F", Status.BLOCKED)
    assert not a.passes("F")


@settings(max_examples=80, deadline=None)
@given(evidence())
def test_a_category_with_nothing_executed_earns_zero(records: list[Record]) -> None:
    for model in score(records).models:
        for c in model.categories:
            if c.executed == 0:
                assert c.points == 0 and not c.assessed
            else:
                assert 0 <= c.points <= c.weight
        if not model.gateway_failed:
            assert model.mqs == round(sum(float(c.points) for c in model.categories) + 1e-9)


def test_skipped_never_counts_as_executed_or_passed() -> None:
    records = gateways_passed() + category_records("QUAL", 3, 4, skipped=10)
    (m,) = score(records).models
    qual = m.categories[0]
    assert (qual.passed, qual.executed, qual.skipped) == (3, 4, 10)
    assert m.mqs == 150  # 200 × 3/4; nothing else assessed


def test_grades_at_every_boundary() -> None:
    expected = {
        1000: "A+",
        950: "A+",
        949: "A",
        900: "A",
        899: "B+",
        850: "B+",
        849: "B",
        800: "B",
        799: "C",
        700: "C",
        699: "F",
        0: "F",
    }
    assert {mqs: grade_for(mqs) for mqs in expected} == expected
    assert grade_rank("A+") > grade_rank("A") > grade_rank("B+") > grade_rank("C") > grade_rank("F")


def test_models_are_scored_separately() -> None:
    good = gateways_passed("org/good") + category_records("QUAL", 1, 1, model="org/good")
    bad = [rec("G2-INFER-001", Outcome.FALSIFIED, model="org/bad", reason="empty output")]
    bad += category_records("QUAL", 1, 1, model="org/bad")
    run = score(good + bad)
    assert [(m.model, m.mqs, m.status) for m in run.models] == [
        ("org/bad", 0, "Blocked"),
        ("org/good", 200, "Blocked"),  # 200 is an F
    ]
    g2 = run.models[0].gateways[2]
    assert g2.verdict == "failed" and "empty output" in g2.reason
    assert g2.evidence == (bad[0].record_id,)


def test_unknown_gate_is_counted_warned_and_not_scored() -> None:
    base = gateways_passed() + category_records("QUAL", 1, 1)
    with_unknown = [*base, rec("Z-NOPE-001", Outcome.FALSIFIED), rec("Z-NOPE-001")]
    plain, unknown = score(base), score(with_unknown)
    assert unknown.models[0].mqs == plain.models[0].mqs == 200
    assert unknown.models[0].unknown_gates == ("Z-NOPE-001",)
    assert sum(unknown.models[0].counts.values()) == len(with_unknown)
    assert any("Z-NOPE-001" in w and "2 record" in w for w in unknown.warnings)
    assert plain.warnings == ()


def test_halted_reason_comes_from_the_earliest_halted_record() -> None:
    records = [
        rec("G1-LOAD-001", Outcome.FALSIFIED),
        rec(
            "F-A1-001",
            Outcome.SKIPPED,
            reason="not run: stop-on-p0 after B",
            timestamp="2025-01-01T00:00:09.000+00:00",
            halted=HaltKind.STOP_ON_P0,
        ),
        rec(
            "F-A1-001",
            Outcome.SKIPPED,
            reason="not run: stop-on-p0 after A",
            timestamp="2025-01-01T00:00:01.000+00:00",
            halted=HaltKind.STOP_ON_P0,
        ),
        # a skipped record that merely says "halted" in its reason is not a halt
        rec("F-A1-001", Outcome.SKIPPED, reason="halted: by its own words"),
    ]
    model = score(records).models[0]
    assert model.halted == "not run: stop-on-p0 after A"
    assert model.halted_by is HaltKind.STOP_ON_P0


def test_an_interruption_explains_a_model_before_a_policy_halt() -> None:
    records = [
        rec(
            "F-A1-001",
            Outcome.SKIPPED,
            reason="not run: stop-on-p0 after A",
            timestamp="2025-01-01T00:00:01.000+00:00",
            halted=HaltKind.STOP_ON_P0,
        ),
        rec(
            "G4-GARBAGE-001",
            Outcome.SKIPPED,
            reason="not decided: interrupted by SIGINT",
            timestamp="2025-01-01T00:00:05.000+00:00",
            halted=HaltKind.INTERRUPTED,
        ),
    ]
    model = score(records).models[0]
    assert model.halted_by is HaltKind.INTERRUPTED
    assert model.halted == "not decided: interrupted by SIGINT"


def test_duplicate_records_count_once_with_a_warning() -> None:
    records = gateways_passed() + category_records("QUAL", 1, 2)
    run = score(records + records[:3])
    assert run.models[0].counts == score(records).models[0].counts
    assert any("duplicate" in w for w in run.warnings)


def test_no_evidence_is_pending_and_does_not_pass() -> None:
    run = score([])
    assert run.models == () and run.status == Status.PENDING and not run.passes("F")


def test_fail_below_threshold() -> None:
    # 200 + 150 + 200 + 150 + 150 + 0 (REGR 0/1) = 850: B+.
    records = gateways_passed()
    for category in ("QUAL", "PERF", "STAB", "COMP", "EDGE"):
        records += category_records(category, 1, 1)
    records += category_records("REGR", 0, 1)
    (m,) = score(records).models
    assert (m.mqs, m.grade) == (850, "B+")
    assert m.passes("B+") and m.passes("C") and not m.passes("A")
