"""G4 over shards is the garbage rate of all outputs, as in an unsharded run."""

from __future__ import annotations

from apr_qa.evidence import Outcome, Record, now_utc
from apr_qa.score import Verdict, score_model


def _g4(shard: str | None, garbage: int, outputs: int, limit: float = 0.25) -> Record:
    rate = garbage / outputs
    return Record(
        run_id="r",
        record_id=f"r-g4-{shard}",
        gate="G4-GARBAGE-001",
        category="GATEWAY",
        severity="P0",
        outcome=Outcome.CORROBORATED if rate <= limit else Outcome.FALSIFIED,
        reason=f"{garbage} of {outputs}",
        model="m",
        metrics={
            "garbage": garbage,
            "outputs": outputs,
            "garbage_rate": rate,
            "garbage_limit": limit,
        },
        shard=shard,
        timestamp=now_utc(),
    )


def _g4_verdict(*records: Record) -> str:
    return next(g.verdict for g in score_model("m", records).gateways if g.gateway == "G4")


def test_a_shard_over_the_limit_does_not_fail_a_model_under_it() -> None:
    # 4 of 10 in one shard (40%), 0 of 10 in the other: 4 of 20 = 20% <= 25%
    assert _g4_verdict(_g4("1/2", 4, 10), _g4("2/2", 0, 10)) == Verdict.PASSED
    assert _g4_verdict(_g4(None, 4, 20)) == Verdict.PASSED


def test_shards_that_each_pass_can_fail_together_only_if_the_rate_does() -> None:
    # 2 of 10 and 4 of 10: 30% > 25% overall, though the first shard alone passed
    assert _g4_verdict(_g4("1/2", 2, 10), _g4("2/2", 4, 10)) == Verdict.FAILED
    assert _g4_verdict(_g4(None, 6, 20)) == Verdict.FAILED


def test_one_shard_keeps_its_own_decision() -> None:
    assert _g4_verdict(_g4("1/2", 4, 10)) == Verdict.FAILED
