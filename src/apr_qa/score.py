"""The Model Qualification Score: a pure function of evidence records.

One scheme, written down in docs/scoring.md: a failed gateway (G0–G4) zeroes the
score; otherwise each category earns ``weight × passed ÷ executed`` and the sum,
rounded half up, is the MQS. A category with nothing executed earns nothing and
is "not assessed". Skipped checks are never executed and never passed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction

from apr_qa.evidence import HaltKind, Outcome, Record
from apr_qa.facts import ModelFacts
from apr_qa.gates import (
    BASELINE_GATES,
    CATEGORY_WEIGHTS,
    GATEWAYS,
    PROFILE_GATES,
    Category,
    Gate,
    lookup,
)

__all__ = [
    "EXECUTED",
    "FAILED",
    "GRADES",
    "CategoryScore",
    "Gateway",
    "GatewayVerdict",
    "ModelScore",
    "RunScore",
    "Status",
    "grade_for",
    "grade_rank",
    "score",
    "score_model",
]

# Skipped is deliberately absent: a check that did not run says nothing.
EXECUTED: frozenset[Outcome] = frozenset(
    {Outcome.CORROBORATED, Outcome.FALSIFIED, Outcome.TIMEOUT, Outcome.CRASHED}
)
FAILED: frozenset[Outcome] = EXECUTED - {Outcome.CORROBORATED}

# (lowest MQS for the grade, grade), best first; the seed README's table.
GRADES: tuple[tuple[int, str], ...] = (
    (950, "A+"),
    (900, "A"),
    (850, "B+"),
    (800, "B"),
    (700, "C"),
    (0, "F"),
)


class Status(StrEnum):
    """Certification statuses (plain strings in summary.json)."""

    CERTIFIED = "Certified"
    PROVISIONAL = "Provisional"
    BLOCKED = "Blocked"
    PENDING = "Pending"


class GatewayVerdict(StrEnum):
    """What a gateway (G0..G4) came to over a model's records."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_ASSESSED = "not assessed"


def grade_for(mqs: int) -> str:
    """The letter grade for an MQS in 0..1000."""
    for floor, grade in GRADES:
        if mqs >= floor:
            return grade
    return "F"


def grade_rank(grade: str) -> int:
    """Higher is better: F is 0, A+ is 5. Raises ValueError for an unknown grade."""
    names = [g for _, g in reversed(GRADES)]
    return names.index(grade)


@dataclass(frozen=True)
class Gateway:
    """One gateway: its verdict, why, and the evidence ids that decided it."""

    gateway: str
    verdict: GatewayVerdict
    reason: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class CategoryScore:
    """Points one category earned, and from what."""

    category: str
    weight: int
    passed: int
    executed: int
    skipped: int
    points: Fraction

    @property
    def assessed(self) -> bool:
        """Whether any check of this category ran."""
        return self.executed > 0


@dataclass(frozen=True)
class ModelScore:
    """Everything the reports say about one model, derived from its records alone."""

    model: str
    mqs: int
    grade: str
    status: Status
    gateways: tuple[Gateway, ...]
    categories: tuple[CategoryScore, ...]
    counts: Mapping[str, int]
    halted: str | None
    """Why part of the work was not run (the first such record's reason), if any."""
    halted_by: HaltKind | None
    duration_s: float
    playbooks: tuple[tuple[str | None, str | None], ...]
    unknown_gates: tuple[str, ...]
    failures: tuple[Record, ...]
    records: tuple[Record, ...]
    stands_in_for: tuple[str, ...] = ()
    """The playbooks' own model ids this model was tested in place of (``--model-path``)."""

    @property
    def label(self) -> str:
        """The model's name for headlines: ``tiny-llama (standing in for Qwen/...)``."""
        if not self.stands_in_for:
            return self.model
        return f"{self.model} (standing in for {', '.join(self.stands_in_for)})"

    @property
    def gateway_failed(self) -> bool:
        """Whether any gateway failed (the score is then 0)."""
        return any(g.verdict == GatewayVerdict.FAILED for g in self.gateways)

    @property
    def regressed(self) -> bool:
        """Whether a check against the baseline run was falsified (F-REGR-BASE-*)."""
        return any(
            r.gate in BASELINE_GATES and r.outcome is Outcome.FALSIFIED for r in self.records
        )

    @property
    def too_slow(self) -> bool:
        """Whether a profile assertion was falsified (F-PROFILE-CI-*)."""
        return any(r.gate in PROFILE_GATES and r.outcome is Outcome.FALSIFIED for r in self.records)

    def passes(self, fail_below: str) -> bool:
        """Whether this model is good enough for CI: gateways held, grade reached,
        nothing regressed beyond what the playbook allows against a baseline, and
        every profile assertion held."""
        if self.gateway_failed or self.status == Status.PENDING or self.regressed:
            return False
        if self.too_slow:
            return False
        return grade_rank(self.grade) >= grade_rank(fail_below)


@dataclass(frozen=True)
class RunScore:
    """The scores of every model in a set of evidence, and what could not be scored."""

    models: tuple[ModelScore, ...]
    warnings: tuple[str, ...]
    facts: Mapping[str, ModelFacts] = field(default_factory=dict)
    """Each model's facts, by model (:func:`apr_qa.facts.latest_facts`); none for a model
    whose artifacts were never read (a fake backend, evidence from an older apr-qa)."""

    @property
    def status(self) -> Status:
        """Pending without models; otherwise the worst model status."""
        if not self.models:
            return Status.PENDING
        order = [Status.BLOCKED, Status.PENDING, Status.PROVISIONAL, Status.CERTIFIED]
        return min((m.status for m in self.models), key=lambda s: order.index(s))

    def passes(self, fail_below: str) -> bool:
        """Whether every model passes; a run with no evidence does not."""
        return bool(self.models) and all(m.passes(fail_below) for m in self.models)


def _sort_key(record: Record) -> tuple[str, str, str]:
    return (record.run_id, record.record_id, record.timestamp)


_SEVERITY_ORDER = {"P0": 0, "P1": 1, "P2": 2}


def _worst_first(record: Record, gate: Gate | None) -> tuple[int, int, str, str, str]:
    gateway_rank = 0 if gate is not None and gate.is_gateway else 1
    return (
        gateway_rank,
        _SEVERITY_ORDER.get(record.severity, 3),
        record.gate,
        record.cell,
        record.record_id,
    )


def _gateway_verdict(gateway: str, records: list[tuple[Record, Gate]]) -> Gateway:
    mine = [r for r, g in records if g.gateway == gateway]
    failed = [r for r in mine if r.outcome in FAILED]
    if failed:
        first = failed[0]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        reason = f"{first.gate} {first.outcome} in {first.cell}: {first.reason}{more}"
        return Gateway(gateway, GatewayVerdict.FAILED, reason, tuple(r.record_id for r in failed))
    passed = [r for r in mine if r.outcome is Outcome.CORROBORATED]
    if passed:
        noun = "check" if len(passed) == 1 else "checks"
        reason = f"{len(passed)} {noun} corroborated"
        return Gateway(gateway, GatewayVerdict.PASSED, reason, tuple(r.record_id for r in passed))
    if mine:
        reason = f"{len(mine)} skipped: {mine[0].reason}"
        return Gateway(
            gateway, GatewayVerdict.NOT_ASSESSED, reason, tuple(r.record_id for r in mine)
        )
    return Gateway(gateway, GatewayVerdict.NOT_ASSESSED, "no check recorded", ())


def _category_score(category: Category, records: list[tuple[Record, Gate]]) -> CategoryScore:
    mine = [r for r, g in records if g.category is category]
    executed = sum(1 for r in mine if r.outcome in EXECUTED)
    passed = sum(1 for r in mine if r.outcome is Outcome.CORROBORATED)
    skipped = sum(1 for r in mine if r.outcome is Outcome.SKIPPED)
    weight = CATEGORY_WEIGHTS[category]
    points = Fraction(weight * passed, executed) if executed else Fraction(0)
    return CategoryScore(str(category), weight, passed, executed, skipped, points)


def _round_half_up(value: Fraction) -> int:
    # Python's round() is banker's rounding; 849.5 must be a B+, as a reader expects.
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _status(
    mqs_grade: str,
    gateways: tuple[Gateway, ...],
    categories: tuple[CategoryScore, ...],
    executed: int,
) -> Status:
    if any(g.verdict == GatewayVerdict.FAILED for g in gateways):
        return Status.BLOCKED
    if executed == 0:
        return Status.PENDING
    if mqs_grade == "F":
        return Status.BLOCKED
    complete = all(c.assessed for c in categories) and all(
        g.verdict == GatewayVerdict.PASSED for g in gateways
    )
    if mqs_grade in ("A+", "A") and complete:
        return Status.CERTIFIED
    return Status.PROVISIONAL


def _halted(records: list[Record]) -> Record | None:
    halted = [r for r in records if r.halted is not None]
    if not halted:
        return None
    # An interruption explains more than a policy halt; then the earliest explains
    # the rest; ties broken by id so order never matters.
    return min(
        halted,
        key=lambda r: (r.halted is not HaltKind.INTERRUPTED, r.timestamp, r.record_id),
    )


def score_model(model: str, records: Iterable[Record]) -> ModelScore:
    """Score one model's records (all records must name ``model``)."""
    ordered = sorted(records, key=_sort_key)
    known: list[tuple[Record, Gate]] = []
    unknown: set[str] = set()
    for record in ordered:
        gate = lookup(record.gate)
        if gate is None:
            unknown.add(record.gate)
        else:
            known.append((record, gate))
    gateways = tuple(_gateway_verdict(g, known) for g in GATEWAYS)
    categories = tuple(_category_score(c, known) for c in CATEGORY_WEIGHTS)
    executed = sum(1 for r, _ in known if r.outcome in EXECUTED)
    if any(g.verdict == GatewayVerdict.FAILED for g in gateways):
        mqs = 0
    else:
        mqs = _round_half_up(sum((c.points for c in categories), Fraction(0)))
    grade = grade_for(mqs)
    counts = {str(o): sum(1 for r in ordered if r.outcome is o) for o in Outcome}
    gate_of = {id(r): g for r, g in known}
    failures = sorted(
        (r for r in ordered if r.outcome in FAILED),
        key=lambda r: _worst_first(r, gate_of.get(id(r))),
    )
    playbooks = sorted(
        {(r.playbook, r.playbook_sha256) for r in ordered},
        key=lambda p: (p[0] or "", p[1] or ""),
    )
    duration = sum(float(r.metrics.get("duration_s", 0.0)) for r in ordered)
    halt = _halted(ordered)
    return ModelScore(
        model=model,
        mqs=mqs,
        grade=grade,
        status=_status(grade, gateways, categories, executed),
        gateways=gateways,
        categories=categories,
        counts=counts,
        halted=halt.reason if halt is not None else None,
        halted_by=halt.halted if halt is not None else None,
        duration_s=round(duration, 6),
        playbooks=tuple(playbooks),
        unknown_gates=tuple(sorted(unknown)),
        failures=tuple(failures),
        records=tuple(ordered),
        stands_in_for=tuple(sorted({r.stands_in_for for r in ordered if r.stands_in_for})),
    )


def _dedupe(records: Iterable[Record]) -> tuple[list[Record], list[str]]:
    seen: dict[tuple[str, str], Record] = {}
    warnings: list[str] = []
    duplicates: dict[tuple[str, str], int] = defaultdict(int)
    for record in records:
        key = (record.run_id, record.record_id)
        if key in seen:
            duplicates[key] += 1
            continue
        seen[key] = record
    if duplicates:
        total = sum(duplicates.values())
        first = min(duplicates)
        warnings.append(
            f"{total} duplicate record(s) ignored (same run_id and record_id, "
            f"e.g. {first[0]}/{first[1]}): was an evidence file given twice?"
        )
    return list(seen.values()), warnings


def score(records: Iterable[Record]) -> RunScore:
    """Score every model in the evidence. Deterministic and independent of record order.

    Records with an unknown gate id are kept (counted and shown in the reports) but
    earn and cost nothing; each unknown id gets one warning. A record repeated across
    files (same run_id and record_id) counts once.
    """
    unique, warnings = _dedupe(records)
    by_model: dict[str, list[Record]] = defaultdict(list)
    for record in unique:
        by_model[record.model].append(record)
    models = tuple(score_model(m, by_model[m]) for m in sorted(by_model))
    for model in models:
        for gate_id in model.unknown_gates:
            n = sum(1 for r in model.records if r.gate == gate_id)
            warnings.append(
                f"{model.model}: unknown gate id {json.dumps(gate_id)} in {n} record(s): "
                "shown in the reports but not scored"
            )
        mismatched = sorted(
            {
                r.gate
                for r in model.records
                if (g := lookup(r.gate)) is not None and str(g.category) != r.category
            }
        )
        for gate_id in mismatched:
            warnings.append(
                f"{model.model}: gate {gate_id} recorded under another category than the "
                "catalogue's; scored under the catalogue's"
            )
    return RunScore(models, tuple(warnings))
