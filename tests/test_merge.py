"""Merging runs and shards: by stable check key, evidence-stage gates re-decided."""

from __future__ import annotations

from apr_qa.evidence import HaltKind, Outcome, Record, ScenarioInfo
from apr_qa.gates import Category, Severity
from apr_qa.merge import merge
from apr_qa.score import GatewayVerdict, score_model

STAMP = "2026-12-01T00:00:00.000+00:00"


def _scenario(run: str, shard: str | None, n: int, garbage: bool, stamp: str = STAMP) -> Record:
    return Record(
        run_id=run,
        record_id=f"{run}-s{n}",
        gate="F-A1-001",
        category=Category.QUAL,
        severity=Severity.P1,
        outcome=Outcome.CORROBORATED,
        reason="ok",
        model="m",
        format="gguf",
        quantization="q8_0",
        backend="cpu",
        modality="run",
        scenario=ScenarioInfo(name=f"s{n}", id=f"s{n}"),
        output="x",
        metrics={"garbage": 1.0 if garbage else 0.0},
        shard=shard,
        timestamp=stamp,
    )


def _g4(run: str, shard: str | None, garbage: int, outputs: int, limit: float = 0.25) -> Record:
    rate = garbage / outputs
    return Record(
        run_id=run,
        record_id=f"{run}-g4",
        gate="G4-GARBAGE-001",
        category=Category.GATEWAY,
        severity=Severity.P0,
        outcome=Outcome.CORROBORATED if rate <= limit else Outcome.FALSIFIED,
        reason=f"{garbage} of {outputs}",
        model="m",
        metrics={"garbage": garbage, "outputs": outputs, "garbage_limit": limit},
        shard=shard,
        timestamp=STAMP,
    )


def _shard(run: str, shard: str | None, first: int, garbage: int, outputs: int) -> list[Record]:
    scenarios = [_scenario(run, shard, first + i, i < garbage) for i in range(outputs)]
    return [*scenarios, _g4(run, shard, garbage, outputs)]


def _g4_verdict(records: list[Record]) -> GatewayVerdict:
    merged = merge(records).records
    return next(g.verdict for g in score_model("m", merged).gateways if g.gateway == "G4")


def test_a_shard_over_the_limit_does_not_fail_a_model_under_it() -> None:
    # 4 of 10 in one shard (40%, falsified there), 0 of 10 in the other: 20% <= 25%
    records = _shard("a", "1/2", 0, 4, 10) + _shard("b", "2/2", 10, 0, 10)
    assert _g4_verdict(records) is GatewayVerdict.PASSED
    (g4,) = [r for r in merge(records).records if r.gate == "G4-GARBAGE-001"]
    assert g4.metrics["outputs"] == 20 and "re-decided over 2 runs" in g4.reason


def test_shards_that_each_pass_can_fail_together_only_if_the_rate_does() -> None:
    # 2 of 10 and 4 of 10: each shard's own decision differs, the union is 30% > 25%
    records = _shard("a", "1/2", 0, 2, 10) + _shard("b", "2/2", 10, 4, 10)
    assert _g4_verdict(records) is GatewayVerdict.FAILED


def test_one_run_keeps_its_own_decision() -> None:
    records = _shard("a", "1/2", 0, 4, 10)
    assert merge(records).records == tuple(records)
    assert _g4_verdict(records) is GatewayVerdict.FAILED


def _g0(run: str, shard: str | None, stamp: str = STAMP) -> Record:
    return Record(
        run_id=run,
        record_id=f"{run}-g0",
        gate="G0-INTEGRITY-002",
        category=Category.GATEWAY,
        severity=Severity.P0,
        outcome=Outcome.CORROBORATED,
        reason="finite",
        model="m",
        format="gguf",
        quantization="q8_0",
        shard=shard,
        timestamp=stamp,
    )


def test_an_artifact_check_two_shards_share_counts_once_without_a_warning() -> None:
    merged = merge([_g0("a", "1/2"), _g0("b", "2/2")])
    assert [r.gate for r in merged.records] == ["G0-INTEGRITY-002"]
    assert merged.warnings == ()


def test_two_runs_of_the_same_work_keep_the_newest_and_say_so() -> None:
    old = _shard("a", None, 0, 0, 3)
    new = [_scenario("b", None, i, True, stamp="2026-12-02T00:00:00.000+00:00") for i in range(3)]
    merged = merge(old + new)
    scenarios = [r for r in merged.records if r.gate == "F-A1-001"]
    assert {r.run_id for r in scenarios} == {"b"}
    assert len(scenarios) == 3
    (warning,) = merged.warnings
    assert warning.startswith("3 check(s) recorded by more than one run (a, b; unsharded)")


def test_an_interrupted_shard_leaves_g4_undecided_after_merging() -> None:
    partial = _g4("b", "2/2", 0, 1)
    partial = Record(
        **{
            **partial.__dict__,
            "outcome": Outcome.SKIPPED,
            "halted": HaltKind.INTERRUPTED,
            "metrics": {},
        }
    )
    records = [*_shard("a", "1/2", 0, 0, 4), _scenario("b", "2/2", 9, False), partial]
    (g4,) = [r for r in merge(records).records if r.gate == "G4-GARBAGE-001"]
    assert g4.outcome is Outcome.SKIPPED and g4.halted is HaltKind.INTERRUPTED
