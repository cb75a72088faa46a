"""One gate's verdict on one artifact, and the ledger that reaches it.

A check that compared nothing must say so (``passed=None``, a skip with a reason)
instead of passing: the original tool's tensor-name check passed with zero
tensors. :class:`Ledger` makes that the default: a gate passes only when at least
one comparison was made and none disagreed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from apr_qa.evidence import Outcome, decide

__all__ = ["MAX_LISTED", "Finding", "Ledger", "bounded"]

MAX_LISTED = 10
"""Most names a finding lists in its details; the counts say how many there were."""


def _no_details() -> Mapping[str, object]:
    return {}


@dataclass(frozen=True)
class Finding:
    """What one gate saw on one artifact.

    ``passed`` is ``None`` when the gate had nothing to compare (``reason`` says
    why); it is never ``True`` in that case. ``details`` is JSON-safe: counts and
    bounded lists of names.
    """

    gate: str
    passed: bool | None
    reason: str
    details: Mapping[str, object] = field(default_factory=_no_details)
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Numbers the record keeps (evidence-stage checks read them back when merging)."""
    expected: object = None
    """What the record keeps as its ``expected`` (JSON-safe): the baseline a regression
    check compared with and the checks it found moved, which reports show."""

    @property
    def outcome(self) -> Outcome:
        """The evidence outcome this finding records as (:func:`apr_qa.evidence.decide`)."""
        return decide(self.passed)


def bounded(items: Sequence[str], limit: int = MAX_LISTED) -> list[str]:
    """The first ``limit`` items, as a list (details stay small on huge models)."""
    return list(items[:limit])


class Ledger:
    """Comparisons made and disagreements seen by one gate."""

    def __init__(self, gate: str) -> None:
        self.gate = gate
        self.compared: list[str] = []
        self.problems: list[str] = []

    def check(self, ok: bool, what: str, problem: str) -> bool:
        """Record one comparison of ``what``; ``problem`` is the reason if it failed."""
        self.compared.append(what)
        if not ok:
            self.problems.append(problem)
        return ok

    def fail(self, problem: str) -> None:
        """Record a defect found without a comparison of two values (a missing file)."""
        self.compared.append(problem)
        self.problems.append(problem)

    def finding(
        self,
        *,
        passed: str,
        skipped: str,
        details: Mapping[str, object] | None = None,
    ) -> Finding:
        """The verdict: falsified by the first problem, else corroborated, else skipped.

        ``passed`` is the reason when every comparison agreed, ``skipped`` when
        none was made.
        """
        info: dict[str, object] = {
            "compared": len(self.compared),
            "problems": bounded(self.problems),
            "problem_count": len(self.problems),
        }
        info.update(details or {})
        if self.problems:
            more = len(self.problems) - 1
            reason = self.problems[0] + (f" (and {more} more problem(s))" if more else "")
            return Finding(self.gate, False, reason, info)
        if not self.compared:
            return Finding(self.gate, None, skipped, info)
        return Finding(self.gate, True, passed, info)
