"""Two runs set side by side by each record's stable check key.

The question a reviewer asks of a pull request is "what got worse?". A grade
alone hides which checks moved, so the comparison is per check: the same key
(:func:`apr_qa.evidence.check_key`) in both runs is the same check, and its
two outcomes say whether it regressed (passed before, fails now), was fixed,
still fails or still passes. Checks only one run holds are *new* or *removed*
and never count as regressions: a matrix that grew is not a model that got
worse. A check skipped on either side compared nothing and is listed apart.

Pure: the same two bodies of evidence give the same comparison, whatever the
order of their records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from apr_qa.evidence import Outcome, Record
from apr_qa.gates import CATEGORY_WEIGHTS
from apr_qa.score import FAILED, ModelScore, score

__all__ = [
    "CategoryDelta",
    "Change",
    "CheckChange",
    "Comparison",
    "ModelDelta",
    "ModelView",
    "compare_records",
    "view_of",
]


class Change(StrEnum):
    """What became of one check between the two runs."""

    REGRESSED = "regressed"
    FIXED = "fixed"
    STILL_FAILING = "still failing"
    STILL_PASSING = "still passing"
    NOT_COMPARED = "not compared"
    """Skipped in one run or both: nothing to compare, never a pass nor a regression."""
    NEW = "new"
    REMOVED = "removed"


@dataclass(frozen=True)
class CheckChange:
    """One check key and its record in each run (None where the run lacks it)."""

    key: str
    change: Change
    before: Record | None
    after: Record | None

    @property
    def record(self) -> Record:
        """The newest record of the check (the baseline's when it was removed)."""
        chosen = self.after or self.before
        assert chosen is not None  # a change always holds at least one side
        return chosen


@dataclass(frozen=True)
class ModelView:
    """What a run said of one model overall (from its evidence or its summary.json)."""

    model: str
    mqs: int
    grade: str
    status: str
    categories: Mapping[str, float | None]
    """Points per category; None where the category was not assessed."""


@dataclass(frozen=True)
class CategoryDelta:
    """One category's points before and after (None: not assessed)."""

    category: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        """After minus before, when both runs assessed the category."""
        if self.before is None or self.after is None:
            return None
        return round(self.after - self.before, 2)


@dataclass(frozen=True)
class ModelDelta:
    """One model's verdict before and after."""

    model: str
    baseline_model: str
    before: ModelView | None
    after: ModelView | None

    @property
    def mqs_drop(self) -> int:
        """How many MQS points were lost (negative when the score rose); 0 if unknown."""
        if self.before is None or self.after is None:
            return 0
        return self.before.mqs - self.after.mqs

    @property
    def categories(self) -> tuple[CategoryDelta, ...]:
        """Every category, in the catalogue's order."""
        out = []
        for category in CATEGORY_WEIGHTS:
            name = str(category)
            before = self.before.categories.get(name) if self.before else None
            after = self.after.categories.get(name) if self.after else None
            out.append(CategoryDelta(name, before, after))
        return tuple(out)


@dataclass(frozen=True)
class Comparison:
    """Every check of two runs, classified, and each model's score before and after."""

    changes: tuple[CheckChange, ...]
    models: tuple[ModelDelta, ...]
    notes: tuple[str, ...] = ()
    checks_compared: bool = True
    """False when the baseline kept no per-check outcomes (a summary.json alone)."""

    def of(self, change: Change) -> tuple[CheckChange, ...]:
        """The checks that came to ``change``, in key order."""
        return tuple(c for c in self.changes if c.change is change)

    @property
    def counts(self) -> dict[str, int]:
        """How many checks came to each change (every change named, zeros included)."""
        return {str(ch): len(self.of(ch)) for ch in Change}

    @property
    def regressed(self) -> tuple[CheckChange, ...]:
        """The checks that passed before and fail now."""
        return self.of(Change.REGRESSED)


def _passed(record: Record) -> bool | None:
    if record.outcome is Outcome.CORROBORATED:
        return True
    if record.outcome in FAILED:
        return False
    return None  # skipped: compared nothing


def _classify(before: Record, after: Record) -> Change:
    was, now = _passed(before), _passed(after)
    if was is None or now is None:
        return Change.NOT_COMPARED
    if was and not now:
        return Change.REGRESSED
    if not was and now:
        return Change.FIXED
    return Change.STILL_PASSING if now else Change.STILL_FAILING


def view_of(model: ModelScore) -> ModelView:
    """The overall view of a scored model."""
    categories = {
        c.category: (round(float(c.points), 2) if c.assessed else None) for c in model.categories
    }
    return ModelView(model.model, model.mqs, model.grade, str(model.status), categories)


def _pair_models(before: Iterable[str], after: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """after model -> baseline model. Same names pair; when each run holds exactly one
    model left unpaired, those two pair too (a checkpoint tested under its path's name
    against the one it replaces), with a note saying so."""
    was, now = sorted(set(before)), sorted(set(after))
    pairs = {m: m for m in now if m in was}
    left_before = [m for m in was if m not in pairs]
    left_after = [m for m in now if m not in pairs]
    notes = []
    if len(left_before) == 1 and len(left_after) == 1:
        pairs[left_after[0]] = left_before[0]
        notes.append(
            f"compared model {left_after[0]} with the baseline's {left_before[0]} "
            "(the only unpaired model in each run)"
        )
    return pairs, notes


def _local_key(record: Record) -> str:
    """The key without its model: what stays equal when the same check runs on a renamed
    model (the model is matched separately)."""
    prefix = f"{record.model}|"
    return record.key[len(prefix) :] if record.key.startswith(prefix) else record.key


def _latest(records: Iterable[Record]) -> dict[tuple[str, str], Record]:
    """(model, local key) -> record; a key recorded twice keeps the newest record."""
    out: dict[tuple[str, str], Record] = {}
    for r in sorted(records, key=lambda r: (r.timestamp, r.run_id, r.record_id)):
        out[(r.model, _local_key(r))] = r
    return out


def compare_records(
    before: Sequence[Record] | None,
    after: Sequence[Record],
    *,
    before_views: Sequence[ModelView] = (),
    ignore_gates: Iterable[str] = (),
) -> Comparison:
    """Classify every check of ``after`` against ``before`` by key, and score both.

    ``before`` is None when the baseline kept no per-check outcomes; then
    ``before_views`` (from its summary.json) give the scores before, and no check
    is classified. ``ignore_gates`` are left out on both sides (the regression
    checks themselves: a run is not compared with its own comparison).
    """
    ignored = set(ignore_gates)
    now = [r for r in after if r.gate not in ignored]
    was = None if before is None else [r for r in before if r.gate not in ignored]
    views_before = {v.model: v for v in before_views}
    if was is not None:
        views_before = {m.model: view_of(m) for m in score(was).models}
    views_after = {m.model: view_of(m) for m in score(now).models}
    pairs, notes = _pair_models(views_before, views_after)
    models = tuple(
        ModelDelta(m, pairs.get(m, m), views_before.get(pairs.get(m, "")), views_after[m])
        for m in sorted(views_after)
    )
    paired_before = set(pairs.values())
    models += tuple(
        ModelDelta(m, m, views_before[m], None)
        for m in sorted(views_before)
        if m not in paired_before
    )
    if was is None:
        return Comparison((), models, tuple(notes), checks_compared=False)
    old = _latest(was)
    new = _latest(now)
    changes: list[CheckChange] = []
    matched: set[tuple[str, str]] = set()
    for (model, local), record in new.items():
        partner = (pairs.get(model, model), local)
        previous = old.get(partner)
        if previous is None:
            changes.append(CheckChange(record.key, Change.NEW, None, record))
            continue
        matched.add(partner)
        changes.append(CheckChange(record.key, _classify(previous, record), previous, record))
    for where, record in old.items():
        if where not in matched:
            changes.append(CheckChange(record.key, Change.REMOVED, record, None))
    changes.sort(key=lambda c: (list(Change).index(c.change), c.key))
    return Comparison(tuple(changes), models, tuple(notes))
