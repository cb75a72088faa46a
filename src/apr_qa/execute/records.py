"""Making evidence records: the catalogue decides category and severity, not the caller."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apr_qa.evidence import (
    HaltKind,
    Outcome,
    Record,
    ScenarioInfo,
    bound_output,
    cell_name,
    host_info,
    now_utc,
)
from apr_qa.gates import lookup

__all__ = ["CellRef", "RecordFactory"]


@dataclass(frozen=True)
class CellRef:
    """The cell coordinates stamped on a record."""

    model: str
    format: str | None = None
    quantization: str | None = None
    backend: str | None = None
    modality: str | None = None

    def __str__(self) -> str:
        return cell_name(self.model, self.format, self.quantization, self.backend, self.modality)


class RecordFactory:
    """Builds records for one run: ids, host, playbook, timestamps."""

    def __init__(self, run_id: str, shard: str | None = None) -> None:
        self.run_id = run_id
        self.shard = shard
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def make(
        self,
        gate: str,
        outcome: Outcome,
        reason: str,
        cell: CellRef,
        *,
        playbook: Any = None,
        scenario: ScenarioInfo | None = None,
        output: str | None = None,
        expected: Any = None,
        metrics: Mapping[str, float] | None = None,
        counterexample: str | None = None,
        halted: HaltKind | None = None,
    ) -> Record:
        """One record; ``playbook`` is the `Playbook` it came from (path and sha256).

        The output is bounded here (its length and hash kept), so neither the
        evidence file nor the run's memory grows with what a model rambles.
        """
        known = lookup(gate)
        if known is None:
            raise ValueError(f"unknown gate id {gate!r}")  # a programming error, not bad input
        if known.planned is not None and outcome is not Outcome.SKIPPED:
            # Only the capability that implements a gate may decide it; until then the
            # engine can only say it was not run (a serve cell, say).
            raise ValueError(f"gate {gate} is planned ({known.planned}); it can only be skipped")
        with self._lock:
            number = next(self._ids)
        kept, chars, digest = bound_output(output)
        return Record(
            run_id=self.run_id,
            record_id=f"{self.run_id}-{number:06d}",
            gate=gate,
            category=known.category,
            severity=known.severity,
            outcome=outcome,
            reason=reason,
            model=cell.model,
            format=cell.format,
            quantization=cell.quantization,
            backend=cell.backend,
            modality=cell.modality,
            scenario=scenario,
            output=kept,
            output_chars=chars,
            output_sha256=digest,
            expected=_json_safe(expected),
            metrics=dict(metrics or {}),
            counterexample=counterexample,
            halted=halted,
            playbook=str(playbook.path) if playbook is not None else None,
            playbook_sha256=playbook.sha256 if playbook is not None else None,
            stands_in_for=playbook.model.stands_in_for if playbook is not None else None,
            shard=self.shard,
            host=host_info(),
            timestamp=now_utc(),
        )


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)
