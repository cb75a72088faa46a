"""Builders of evidence records for scoring and report tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from apr_qa.evidence import HaltKind, Outcome, Record, ScenarioInfo

CATEGORY_GATE = {
    "QUAL": "F-A1-001",
    "PERF": "F-PROFILE-CI-001",
    "STAB": "F-STAB-DET-001",
    "COMP": "F-ROSETTA-INF-001",
    "EDGE": "F-EDGE-001",
    "REGR": "F-REGR-GOLDEN-001",
}
GATEWAY_GATE = {
    "G0": "G0-INTEGRITY-001",
    "G1": "G1-LOAD-001",
    "G2": "G2-INFER-001",
    "G3": "G3-CRASH-001",
    "G4": "G4-GARBAGE-001",
}
SHA = "a" * 64
_ids = itertools.count(1)


def rec(
    gate: str,
    outcome: Outcome | str = Outcome.CORROBORATED,
    *,
    model: str = "org/tiny",
    category: str | None = None,
    reason: str = "ok",
    fmt: str = "gguf",
    quant: str = "q4_k_m",
    backend: str = "cpu",
    modality: str = "run",
    scenario: str | None = "s",
    output: str | None = None,
    counterexample: str | None = None,
    line: int | None = 7,
    playbook: str = "playbooks/tiny.yaml",
    run_id: str = "run-1",
    record_id: str | None = None,
    duration: float = 0.5,
    timestamp: str = "2025-01-01T00:00:00.000+00:00",
    severity: str | None = None,
    halted: HaltKind | None = None,
    key: str | None = None,
) -> Record:
    """One record; category and severity default to the catalogue's. Its stable key is
    unique unless given (real evidence never repeats a key within a run)."""
    from apr_qa.gates import lookup

    gate_info = lookup(gate)
    record_id = record_id or f"r{next(_ids):06d}"
    return Record(
        run_id=run_id,
        record_id=record_id,
        key=key or f"{model}|{gate}|{record_id}",
        halted=halted,
        gate=gate,
        category=category or (str(gate_info.category) if gate_info else "QUAL"),
        severity=severity or (str(gate_info.severity) if gate_info else "P1"),
        outcome=Outcome(outcome),
        reason=reason,
        model=model,
        format=fmt,
        quantization=quant,
        backend=backend,
        modality=modality,
        scenario=ScenarioInfo(
            name=scenario, oracle="contains", prompt="What is 2+2?", file=playbook, line=line
        )
        if scenario
        else None,
        output=output,
        counterexample=counterexample,
        metrics={"duration_s": duration},
        playbook=playbook,
        playbook_sha256=SHA,
        host={"hostname": "ci", "python": "3.11.7"},
        timestamp=timestamp,
    )


def gateways_passed(model: str = "org/tiny", **kw: object) -> list[Record]:
    """One corroborated record per gateway."""
    return [rec(g, model=model, scenario=None, **kw) for g in GATEWAY_GATE.values()]  # type: ignore[arg-type]


def category_records(
    category: str,
    passed: int,
    executed: int,
    skipped: int = 0,
    *,
    model: str = "org/tiny",
    failed_as: Iterable[Outcome] = (Outcome.FALSIFIED,),
) -> list[Record]:
    """``executed`` executed records of which ``passed`` corroborated, plus ``skipped``."""
    gate = CATEGORY_GATE[category]
    cycle = itertools.cycle(list(failed_as))
    out = [rec(gate, model=model, scenario=f"{category.lower()}-{i}") for i in range(passed)]
    out += [
        rec(
            gate,
            next(cycle),
            model=model,
            reason="wrong answer",
            scenario=f"{category.lower()}-f{i}",
        )
        for i in range(executed - passed)
    ]
    out += [
        rec(
            gate,
            Outcome.SKIPPED,
            model=model,
            reason="gpu absent",
            scenario=f"{category.lower()}-s{i}",
        )
        for i in range(skipped)
    ]
    return out
