"""Merging evidence from several runs or shards into one body of evidence to score.

Records are matched by their stable check key (:func:`apr_qa.evidence.check_key`):

- A check of a whole artifact or model (G0 on an artifact two shards share) is
  recorded by each shard that needed it; merged, it counts once.
- Two runs of the same shard (or two complete runs) hold the same cell checks:
  the newest run's record is kept, with a warning, rather than counting both.
- Evidence-stage checks (G4 garbage rate, ...) were decided by each run over
  its own records; merged, they are decided again over the union, so a sharded
  run reaches the verdict of the unsharded one.

Pure: the same files give the same records, whatever their order.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from apr_qa.checks import Stage, registered
from apr_qa.evidence import HaltKind, Record
from apr_qa.execute.records import CellRef, RecordFactory

__all__ = ["MERGED_RUN_ID", "Merged", "merge"]

MERGED_RUN_ID = "merged"


@dataclass(frozen=True)
class Merged:
    """The records to score, and what merging had to decide (one line each)."""

    records: tuple[Record, ...]
    warnings: tuple[str, ...]


def _run_order(records: Sequence[Record]) -> dict[str, tuple[str, str]]:
    """Each run's rank: its latest timestamp (then id), so "newest" is well defined."""
    latest: dict[str, str] = {}
    for r in records:
        if r.timestamp > latest.get(r.run_id, ""):
            latest[r.run_id] = r.timestamp
    return {run: (stamp, run) for run, stamp in latest.items()}


def _by_key(records: Sequence[Record]) -> tuple[list[Record], list[str]]:
    order = _run_order(records)
    shard_of = {r.run_id: r.shard for r in records}
    runs_of: dict[str, set[str]] = defaultdict(set)
    for r in records:
        runs_of[r.key].add(r.run_id)
    newest = {key: max(runs, key=order.__getitem__) for key, runs in runs_of.items()}
    clashes: dict[tuple[str, ...], set[str]] = defaultdict(set)
    kept: list[Record] = []
    for r in records:
        runs = runs_of[r.key]
        if len(runs) > 1 and not _shared(r, [shard_of[x] for x in runs]):
            clashes[tuple(sorted(runs, key=order.__getitem__))].add(r.key)
        if r.run_id == newest[r.key]:
            kept.append(r)
    warnings = []
    for run_ids, keys in sorted(clashes.items()):
        shards = ", ".join(sorted({str(shard_of[x] or "unsharded") for x in run_ids}))
        warnings.append(
            f"{len(keys)} check(s) recorded by more than one run ({', '.join(run_ids)}; {shards}): "
            "the same work merged twice? kept the newest run's records"
        )
    return kept, warnings


def _shared(record: Record, shards: list[str | None]) -> bool:
    """Whether a repeated record is the expected kind: an artifact or model check that
    distinct shards of one run each recorded."""
    return record.backend is None and None not in shards and len(set(shards)) == len(shards)


def _redecide(records: list[Record]) -> list[Record]:
    """Evidence-stage gates decided again over the merged records of each model."""
    checks = registered(Stage.EVIDENCE)
    gates = {g for check in checks for g in check.gates}
    if len({r.run_id for r in records}) < 2:
        return records
    factory = RecordFactory(MERGED_RUN_ID)
    by_model: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_model[r.model].append(r)
    out = [r for r in records if r.gate not in gates]
    for model, mine in sorted(by_model.items()):
        stamp = max(r.timestamp for r in mine)
        for check in checks:
            previous = [r for r in mine if r.gate in check.gates]
            partial = [r for r in previous if r.halted is HaltKind.INTERRUPTED]
            if partial:  # an interrupted run's evidence is partial: nothing to re-decide
                out.append(min(partial, key=lambda r: (r.timestamp, r.record_id)))
                continue
            if not previous:
                continue  # no run decided it: merging does not invent a check
            first = min(previous, key=lambda r: (r.timestamp, r.record_id))
            for finding in check.check(mine, None):
                made = factory.make(
                    finding.gate,
                    finding.outcome,
                    f"{finding.reason} (re-decided over {len({r.run_id for r in mine})} runs)",
                    CellRef(model),
                    expected=finding.expected,
                    metrics=finding.metrics,
                )
                out.append(
                    dataclasses.replace(
                        made,
                        playbook=first.playbook,
                        playbook_sha256=first.playbook_sha256,
                        stands_in_for=first.stands_in_for,
                        host={},
                        timestamp=stamp,
                    )
                )
    return out


def merge(records: Iterable[Record]) -> Merged:
    """One body of evidence from the records of one or more runs."""
    everything = list(records)
    kept, warnings = _by_key(everything)
    return Merged(tuple(_redecide(kept)), tuple(warnings))
