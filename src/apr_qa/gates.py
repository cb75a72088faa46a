"""The catalogue of gates: every check apr-qa records names one of these.

IDs reuse the original tool's where it had one, so an upstream playbook's
``falsification_gates`` list means something here. Rules are written out in
docs/gates.md beside the test that shows each gate failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CATEGORY_WEIGHTS",
    "GATEWAYS",
    "Category",
    "Gate",
    "Severity",
    "all_gates",
    "lookup",
    "scenario_gate",
]


class Severity(StrEnum):
    """P0 gates are gateways: one failure zeroes the score."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"


class Category(StrEnum):
    """Score categories; ``GATEWAY`` checks zero the score instead of earning points."""

    GATEWAY = "GATEWAY"
    QUAL = "QUAL"
    PERF = "PERF"
    STAB = "STAB"
    COMP = "COMP"
    EDGE = "EDGE"
    REGR = "REGR"


CATEGORY_WEIGHTS: dict[Category, int] = {
    Category.QUAL: 200,
    Category.PERF: 150,
    Category.STAB: 200,
    Category.COMP: 150,
    Category.EDGE: 150,
    Category.REGR: 150,
}


@dataclass(frozen=True)
class Gate:
    """One named check: what it holds, how bad a failure is, where it scores."""

    id: str
    title: str
    category: Category
    severity: Severity
    gateway: str | None = None  # "G0".."G4" for gateway checks

    @property
    def is_gateway(self) -> bool:
        """Whether a failure of this gate zeroes the score."""
        return self.gateway is not None


def _g(gid: str, title: str, category: Category, severity: Severity = Severity.P1) -> Gate:
    gateway = gid[:2] if category is Category.GATEWAY else None
    return Gate(gid, title, category, Severity.P0 if gateway else severity, gateway)


_GATES: tuple[Gate, ...] = (
    # Gateways (P0): any failure zeroes the MQS.
    _g("G0-INTEGRITY-001", "config.json agrees with tensor shapes", Category.GATEWAY),
    _g("G0-INTEGRITY-002", "no tensor holds NaN or Inf", Category.GATEWAY),
    _g("G0-INTEGRITY-003", "no tensor is all zeros", Category.GATEWAY),
    _g("G0-INTEGRITY-004", "tokenizer files present and loadable", Category.GATEWAY),
    _g("G0-INTEGRITY-005", "GGUF header and metadata valid", Category.GATEWAY),
    _g("G0-FORMAT-GGUF-001", "missing GGUF produced by the reference converter", Category.GATEWAY),
    _g("G1-LOAD-001", "the artifact loads in its backend", Category.GATEWAY),
    _g("G2-INFER-001", "a trivial prompt yields non-empty tokens", Category.GATEWAY),
    _g("G3-CRASH-001", "no worker died by a signal", Category.GATEWAY),
    _g("G3-HANG-001", "no basic scenario hung past its timeout", Category.GATEWAY),
    _g("G4-GARBAGE-001", "garbage outputs within the allowed rate", Category.GATEWAY),
    # Scenario oracles, by modality x backend (the original's F-A1..A6).
    _g("F-A1-001", "run on cpu: scenario oracle holds", Category.QUAL),
    _g("F-A2-001", "chat on cpu: scenario oracle holds", Category.QUAL),
    _g("F-A3-001", "serve on cpu: scenario oracle holds", Category.QUAL),
    _g("F-A4-001", "run on gpu: scenario oracle holds", Category.QUAL),
    _g("F-A5-001", "chat on gpu: scenario oracle holds", Category.QUAL),
    _g("F-A6-001", "serve on gpu: scenario oracle holds", Category.QUAL),
    # Stability and edge cases.
    _g("F-STAB-DET-001", "same prompt at temperature 0 gives the same tokens", Category.STAB),
    _g("F-STAB-TIMEOUT-001", "scenario finishes within its timeout", Category.STAB),
    _g("F-EDGE-001", "edge-case prompt handled without garbage or crash", Category.EDGE),
    # Differential checks between formats.
    _g("F-ROSETTA-DIFF-001", "no transposed dimensions across formats", Category.COMP),
    _g("F-ROSETTA-DIFF-002", "shapes match after conversion", Category.COMP),
    _g("F-ROSETTA-INF-001", "argmax agreement across formats", Category.COMP),
    _g("F-ROSETTA-INF-002", "logit divergence within tolerance", Category.COMP),
    _g("F-ROSETTA-INF-003", "no PAD token flood", Category.COMP, Severity.P0),
    _g("F-TOK-PARITY-001", "tokenizers agree across formats", Category.COMP),
    _g("F-PROFILE-CI-001", "throughput at or above the floor", Category.PERF),
    _g("F-PROFILE-CI-002", "p99 latency at or below the ceiling", Category.PERF),
    _g("F-REGR-GOLDEN-001", "output matches the golden reference", Category.REGR),
)

# Families the original defined by prefix; any ID under them is known.
_FAMILIES: tuple[tuple[str, Category], ...] = (
    ("F-ROSETTA-DIFF-", Category.COMP),
    ("F-ROSETTA-INF-", Category.COMP),
    ("F-ROSETTA-FP-", Category.COMP),
    ("F-ROSETTA-STATS-", Category.COMP),
    ("F-TOK-PARITY-", Category.COMP),
    ("F-CONV-", Category.COMP),
    ("F-TRACE-PAYLOAD-", Category.STAB),
    ("F-HTTP-", Category.STAB),
    ("F-PROFILE-CI-", Category.PERF),
    ("F-EDGE-", Category.EDGE),
    ("F-STAB-", Category.STAB),
    ("F-REGR-", Category.REGR),
    ("F-PATH-", Category.STAB),
    ("F-STATE-", Category.STAB),
    ("F-VALID-", Category.STAB),
    ("F-ERR-", Category.STAB),
    ("F-SEC-", Category.EDGE),
)

GATEWAYS: tuple[str, ...] = ("G0", "G1", "G2", "G3", "G4")

_BY_ID: dict[str, Gate] = {g.id: g for g in _GATES}
_GATE_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")


def all_gates() -> tuple[Gate, ...]:
    """Every gate with its own entry in the catalogue."""
    return _GATES


def lookup(gate_id: str) -> Gate | None:
    """The gate for an ID, by exact entry or by family prefix; None when unknown."""
    if gate := _BY_ID.get(gate_id):
        return gate
    if not _GATE_ID.match(gate_id):
        return None
    for prefix, category in _FAMILIES:
        if gate_id.startswith(prefix):
            return Gate(gate_id, f"{prefix.rstrip('-')} family check", category, Severity.P1)
    return None


def scenario_gate(modality: str, backend: str) -> str:
    """The scenario-oracle gate ID for a cell (F-A1..F-A6)."""
    index = {"run": 1, "chat": 2, "serve": 3}[modality] + (3 if backend == "gpu" else 0)
    return f"F-A{index}-001"
