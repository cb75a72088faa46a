"""Merging runs and shards: by stable check key, evidence-stage gates re-decided."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


# -- through real runs: the tiny fixture in two formats, run and chat -------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apr_qa.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Evidence of the same playbook run whole twice, and as shards 1/2 and 2/2."""
    from apr_qa.fixtures import fixture_path, load_prompts

    tmp = tmp_path_factory.mktemp("merge")
    root = fixture_path("tiny-llama")
    explicit = [p for p in load_prompts("tiny-llama") if p.oracle == "contains"][:2]
    scenarios = "".join(
        "  - "
        + json.dumps(
            {"name": p.id, "prompt": p.prompt, "oracle": "contains", "value": p.expected}
            if p.modality == "run"
            else {
                "name": p.id,
                "messages": [{"role": m.role, "content": m.content} for m in p.messages or ()],
                "oracle": "contains",
                "value": p.expected,
            }
        )
        + "\n"
        for p in explicit
    )
    book = tmp / "merge.yaml"
    # Generated scenarios too (seed 5): falsified, skipped and corroborated checks in
    # several categories, garbage for G4 to re-decide.
    book.write_text(
        f"name: merge\nmodel: {{id: apr-qa/merge, path: {root}}}\n"
        "test_matrix: {modalities: [run, chat], backends: [cpu], formats: [safetensors, gguf],"
        " quantizations: [q8_0], scenario_count: 5, seed: 5, max_tokens: 12}\n"
        f"failure_policy: collect-all\nscenarios:\n{scenarios}"
    )
    out: dict[str, Path] = {}
    for name, extra in (
        ("whole", ()),
        ("again", ()),
        ("s1", ("--shard", "1/2")),
        ("s2", ("--shard", "2/2")),
    ):
        result = _cli("-q", "run", "-w", "2", "-o", str(tmp / name), *extra, str(book))
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
        out[name] = tmp / name / "evidence.jsonl"
    return out


def _verdict(summary: dict[str, Any]) -> dict[str, Any]:
    """Everything a merge must reproduce: per model, counts, gateways, categories, cells."""
    return {
        m["model"]: {
            "counts": m["counts"],
            "mqs": m["mqs"],
            "grade": m["grade"],
            "status": m["status"],
            "gateways": [(g["gateway"], g["verdict"]) for g in m["gateways"]],
            "categories": [
                (c["category"], c["passed"], c["executed"], c["skipped"]) for c in m["categories"]
            ],
            "cells": [(c["cell"], c["passed"], c["executed"], c["skipped"]) for c in m["cells"]],
        }
        for m in summary["models"]
    }


def _report(tmp: Path, *evidence: Path) -> tuple[dict[str, Any], str]:
    result = _cli("report", "-o", str(tmp), *map(str, evidence))
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    return json.loads((tmp / "summary.json").read_text()), result.stderr


@pytest.mark.slow
def test_two_real_shards_merge_into_the_unsharded_verdict(
    real_runs: dict[str, Path], tmp_path: Path
) -> None:
    whole, _ = _report(tmp_path / "whole", real_runs["whole"])
    shards = [_report(tmp_path / s, real_runs[s])[0] for s in ("s1", "s2")]
    # The shards share both artifacts (each ran one cell of each), so each recorded G0
    # for both, and each decided G4: added up, they count more than the whole run.
    totals = [next(iter(_verdict(s).values()))["counts"]["total"] for s in shards]
    whole_total = next(iter(_verdict(whole).values()))["counts"]["total"]
    assert sum(totals) > whole_total
    merged, stderr = _report(tmp_path / "merged", real_runs["s1"], real_runs["s2"])
    assert _verdict(merged) == _verdict(whole)
    assert merged["models"][0]["shards"] == ["1/2", "2/2"]
    assert merged["warnings"] == [] and "warning" not in stderr
    assert {c for _, c in _verdict(whole)["apr-qa/merge"]["gateways"]} != {"not assessed"}


@pytest.mark.slow
def test_two_complete_real_runs_merge_with_a_warning_into_one_runs_counts(
    real_runs: dict[str, Path], tmp_path: Path
) -> None:
    whole, _ = _report(tmp_path / "whole", real_runs["whole"])
    again, _ = _report(tmp_path / "again", real_runs["again"])
    assert _verdict(again) == _verdict(whole)  # the same playbook, the same verdicts
    merged, stderr = _report(tmp_path / "merged", real_runs["whole"], real_runs["again"])
    assert _verdict(merged) == _verdict(whole)
    (warning,) = merged["warnings"]
    assert "recorded by more than one run" in warning and "unsharded" in warning
    assert f"warning: {warning}" in stderr
