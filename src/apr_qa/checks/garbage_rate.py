"""G4 not garbage: garbage outputs are at most ``gates.g4_max_garbage_rate`` of a model's
scenario outputs, over every cell of the model.

An evidence-stage check: it reads the ``garbage`` metric each scenario record
carries (present only on outputs that count), so merging shards re-decides it
over the union of their outputs, and a sharded run reaches the unsharded verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from apr_qa.checks import Stage, register
from apr_qa.checks.finding import Finding
from apr_qa.playbook.model import Gates

if TYPE_CHECKING:
    from apr_qa.evidence import Record
    from apr_qa.playbook.model import Playbook

__all__ = ["GATE", "GarbageRate"]

GATE = "G4-GARBAGE-001"


@register(Stage.EVIDENCE)
class GarbageRate:
    """G4-GARBAGE-001 over one model's scenario records."""

    name = "g4-garbage-rate"
    gates = (GATE,)

    def applies(self, playbook: Playbook) -> bool:
        """Always: G4 is a gateway (a playbook that disables it is told so by a record)."""
        return True

    def check(self, records: Sequence[Record], playbook: Playbook | None) -> Iterable[Finding]:
        """One finding: the garbage rate against the limit, or skipped with the reason."""
        enabled, limit = _settings(records, playbook)
        if not enabled:
            return [Finding(GATE, None, "G4 disabled by the playbook", metrics={"enabled": 0.0})]
        counted = [
            r.metrics["garbage"] for r in records if r.gate != GATE and "garbage" in r.metrics
        ]
        if not counted:
            return [Finding(GATE, None, "no scenario output to judge")]
        garbage = sum(1 for g in counted if g)
        rate = garbage / len(counted)
        reason = (
            f"{garbage} of {len(counted)} outputs are garbage ({rate:.1%}; allowed {limit:.0%})"
        )
        metrics = {
            "garbage_rate": rate,
            "garbage": float(garbage),
            "outputs": float(len(counted)),
            "garbage_limit": limit,
        }
        return [Finding(GATE, rate <= limit, reason, metrics=metrics)]


def _settings(records: Sequence[Record], playbook: Playbook | None) -> tuple[bool, float]:
    """(enabled, limit): the playbook's, or, re-deciding merged evidence, the strictest
    the superseded G4 records carried."""
    if playbook is not None:
        return playbook.gates.g4_output_quality, playbook.gates.g4_max_garbage_rate
    previous = [r for r in records if r.gate == GATE]
    if previous and all(r.metrics.get("enabled", 1.0) == 0.0 for r in previous):
        return False, Gates.g4_max_garbage_rate
    limits = [r.metrics["garbage_limit"] for r in previous if "garbage_limit" in r.metrics]
    return True, min(limits, default=Gates.g4_max_garbage_rate)
