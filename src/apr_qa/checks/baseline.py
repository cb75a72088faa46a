"""F-REGR-BASE: this run against an earlier one (``--baseline``, or the playbook's
``regression.baseline``), check by check.

An evidence-stage check: once a model's cells are decided, its records are set
beside the baseline's by stable key (:mod:`apr_qa.compare`). A check that held
in the baseline and fails now is a regression; more than
``regression.max_regressions`` (default 0) falsify F-REGR-BASE-001. An MQS that
fell by more than ``regression.max_mqs_drop`` falsifies F-REGR-BASE-002 (no
limit set: skipped, with both figures). Fixed, new and removed checks are
counted and listed, never held against the model.

The record keeps, as its ``expected``, the baseline compared with (path and
sha256) and the checks that moved, so the reports show the comparison from
evidence alone and merging shards can compare their union again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apr_qa.checks import Stage, register
from apr_qa.checks.finding import Finding
from apr_qa.compare import Change, CheckChange, Comparison, compare_records
from apr_qa.gates import BASELINE_GATES

if TYPE_CHECKING:
    from apr_qa.baseline import PriorRun
    from apr_qa.evidence import Record
    from apr_qa.playbook.model import Playbook

__all__ = [
    "CHECKS_GATE",
    "MAX_LISTED",
    "MQS_GATE",
    "BaselineRegression",
    "Settings",
    "change_json",
    "settings_of",
]

CHECKS_GATE, MQS_GATE = BASELINE_GATES
MAX_LISTED = 20
"""Most regressed (and fixed) checks a record lists; its counts say how many there were."""
OUTPUT_CHARS = 300


@dataclass(frozen=True)
class Settings:
    """The baseline named, and the thresholds against it."""

    baseline: Path
    max_regressions: int = 0
    max_mqs_drop: int | None = None
    sha256: str | None = None
    """The baseline's hash when re-deciding merged shards (it must not have changed)."""


def settings_of(playbook: Playbook) -> Settings | None:
    """The playbook's ``regression`` section, its baseline resolved beside the playbook."""
    section: Mapping[str, Any] = playbook.sections.get("regression", {})
    named = section.get("baseline")
    if not named:
        return None
    path = Path(named)
    if not path.is_absolute():
        path = playbook.path.parent / path
    drop = section.get("max_mqs_drop")
    return Settings(
        path, int(section.get("max_regressions", 0)), None if drop is None else int(drop)
    )


def _settings_recorded(records: Sequence[Record]) -> Settings | None:
    """Re-deciding merged evidence: the settings the shards' records kept."""
    for r in records:
        if r.gate in BASELINE_GATES and isinstance(r.expected, Mapping):
            base = r.expected.get("baseline")
            if isinstance(base, Mapping) and base.get("path"):
                drop = base.get("max_mqs_drop")
                return Settings(
                    Path(str(base["path"])),
                    int(base.get("max_regressions", 0)),
                    None if drop is None else int(drop),
                    str(base.get("sha256") or "") or None,
                )
    return None


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= OUTPUT_CHARS:
        return text
    return text[:OUTPUT_CHARS] + "…"


def change_json(change: CheckChange) -> dict[str, Any]:
    """One moved check as the record (and the reports) keep it: both outcomes and outputs."""
    record = change.record
    before, after = change.before, change.after
    scenario = record.scenario
    return {
        "key": change.key,
        "gate": record.gate,
        "cell": record.cell,
        "scenario": scenario.name if scenario else None,
        "before": str(before.outcome) if before else None,
        "after": str(after.outcome) if after else None,
        "reason_before": before.reason if before else None,
        "reason_after": after.reason if after else None,
        "output_before": _clip(before.output) if before else None,
        "output_after": _clip(after.output) if after else None,
    }


def _model_records(prior: PriorRun, model: str) -> tuple[str | None, list[Record] | None]:
    """The baseline's model paired with ``model`` (same name, else its only model)."""
    names = sorted({v.model for v in prior.views})
    paired = model if model in names else (names[0] if len(names) == 1 else None)
    if paired is None or prior.records is None:
        return paired, None
    return paired, [r for r in prior.records if r.model == paired]


def _expected(
    settings: Settings, prior: PriorRun, paired: str | None, cmp: Comparison
) -> dict[str, Any]:
    delta = cmp.models[0] if cmp.models else None
    return {
        "baseline": {
            "path": str(settings.baseline),
            "sha256": prior.sha256,
            "model": paired,
            "max_regressions": settings.max_regressions,
            "max_mqs_drop": settings.max_mqs_drop,
        },
        "checks_compared": cmp.checks_compared,
        "counts": cmp.counts,
        "mqs_before": delta.before.mqs if delta and delta.before else None,
        "mqs_after": delta.after.mqs if delta and delta.after else None,
        "grade_before": delta.before.grade if delta and delta.before else None,
        "grade_after": delta.after.grade if delta and delta.after else None,
        "categories": [
            {"category": c.category, "before": c.before, "after": c.after}
            for c in (delta.categories if delta else ())
        ],
        "regressed": [change_json(c) for c in cmp.regressed[:MAX_LISTED]],
        "fixed": [change_json(c) for c in cmp.of(Change.FIXED)[:MAX_LISTED]],
        "notes": list(cmp.notes),
    }


def _skip_all(reason: str) -> list[Finding]:
    return [Finding(gate, None, reason) for gate in BASELINE_GATES]


@register(Stage.EVIDENCE)
class BaselineRegression:
    """F-REGR-BASE-001 (checks regressed) and -002 (MQS drop) against the baseline."""

    name = "regression-baseline"
    gates = BASELINE_GATES

    def applies(self, playbook: Playbook) -> bool:
        """Only with a baseline to compare with."""
        return settings_of(playbook) is not None

    def check(self, records: Sequence[Record], playbook: Playbook | None) -> Iterable[Finding]:
        """Nothing without a baseline (REGR stays not assessed); otherwise both gates."""
        from apr_qa.baseline import read_run
        from apr_qa.errors import UsageError

        settings = settings_of(playbook) if playbook is not None else _settings_recorded(records)
        if settings is None:
            return []
        try:
            prior = read_run(settings.baseline)
        except UsageError as exc:
            return _skip_all(f"baseline unreadable: {exc}")
        if settings.sha256 is not None and prior.sha256 != settings.sha256:
            return _skip_all(
                f"baseline {settings.baseline} changed since the shards compared with it"
            )
        models = {r.model for r in records}
        if len(models) != 1:
            return _skip_all("no record of this model to compare")
        model = models.pop()
        paired, before = _model_records(prior, model)
        views = [v for v in prior.views if v.model == paired]
        cmp = compare_records(before, records, before_views=views, ignore_gates=BASELINE_GATES)
        expected = _expected(settings, prior, paired, cmp)
        return [
            self._checks(settings, cmp, expected, paired),
            self._mqs(settings, cmp, expected),
        ]

    def _checks(
        self, settings: Settings, cmp: Comparison, expected: dict[str, Any], paired: str | None
    ) -> Finding:
        counts = cmp.counts
        metrics = {f"checks_{k.replace(' ', '_')}": float(v) for k, v in counts.items()}
        metrics["max_regressions"] = float(settings.max_regressions)
        where = settings.baseline
        if not cmp.checks_compared:
            reason = f"baseline {where} keeps no per-check outcomes (a summary.json alone)"
            return Finding(CHECKS_GATE, None, reason, metrics=metrics, expected=expected)
        compared = sum(
            counts[str(c)]
            for c in (Change.REGRESSED, Change.FIXED, Change.STILL_FAILING, Change.STILL_PASSING)
        )
        if paired is None or compared == 0:
            reason = f"no decided check in common with the baseline {where}"
            return Finding(CHECKS_GATE, None, reason, metrics=metrics, expected=expected)
        regressed = cmp.regressed
        tally = (
            f"{counts['fixed']} fixed, {counts['still failing']} still failing, "
            f"{counts['new']} new, {counts['removed']} removed"
        )
        if not regressed:
            reason = f"no check regressed against {where} ({compared} compared; {tally})"
            return Finding(CHECKS_GATE, True, reason, metrics=metrics, expected=expected)
        named = "; ".join(
            f"{c.record.gate} in {c.record.cell}"
            + (f" ({c.record.scenario.name})" if c.record.scenario else "")
            for c in regressed[:3]
        )
        more = f" and {len(regressed) - 3} more" if len(regressed) > 3 else ""
        reason = (
            f"{len(regressed)} check(s) regressed against {where} "
            f"(allowed {settings.max_regressions}): {named}{more}; {tally}"
        )
        passed = len(regressed) <= settings.max_regressions
        return Finding(CHECKS_GATE, passed, reason, metrics=metrics, expected=expected)

    def _mqs(self, settings: Settings, cmp: Comparison, expected: dict[str, Any]) -> Finding:
        delta = cmp.models[0] if cmp.models else None
        if delta is None or delta.before is None or delta.after is None:
            return Finding(MQS_GATE, None, "the baseline holds no score for this model")
        before, after = delta.before, delta.after
        metrics = {
            "mqs_before": float(before.mqs),
            "mqs_after": float(after.mqs),
            "mqs_drop": float(delta.mqs_drop),
        }
        figures = f"MQS {before.mqs} ({before.grade}) → {after.mqs} ({after.grade})"
        if settings.max_mqs_drop is None:
            reason = f"{figures}; no regression.max_mqs_drop set, so no limit to hold"
            return Finding(MQS_GATE, None, reason, metrics=metrics, expected=expected)
        metrics["max_mqs_drop"] = float(settings.max_mqs_drop)
        passed = delta.mqs_drop <= settings.max_mqs_drop
        verb = "within" if passed else "beyond"
        reason = (
            f"{figures}: a drop of {delta.mqs_drop}, {verb} the {settings.max_mqs_drop} allowed"
        )
        return Finding(MQS_GATE, passed, reason, metrics=metrics, expected=expected)
