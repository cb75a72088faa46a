"""Checks that are not scenario oracles, by the stage they run at.

A check is one small class registered at its stage; the supervisor runs what is
registered instead of hard-wiring each gate, so a new check is one class here,
not edits across the engine (docs/architecture.md draws the stages):

- ``ARTIFACT``: once per model artifact, before any cell loads it (G0 integrity,
  the converter's product, later tensor statistics). Sees the file.
- ``CELL``: inside a cell, with its worker loaded (G2 probe, later profile). Sees
  a :class:`CellSession`.
- ``MODEL``: once per model across its artifacts (later tensor diff, tokenizer
  parity, logit comparison).
- ``EVIDENCE``: over a model's records once they are all decided (G4 garbage
  rate, later percentiles and regression). Pure functions of evidence, so
  ``apr-qa report`` re-decides them over merged shards.

Every check returns :class:`~apr_qa.checks.finding.Finding` values (or, in a
cell, records through its session); :meth:`Finding.outcome` is the one rule that
turns a verdict into an outcome. Importing this package loads nothing heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from apr_qa.checks.finding import Finding

if TYPE_CHECKING:
    from apr_qa.evidence import Record
    from apr_qa.execute.records import CellRef
    from apr_qa.playbook.model import Playbook

__all__ = [
    "Artifact",
    "ArtifactCheck",
    "CellCheck",
    "EvidenceCheck",
    "Finding",
    "ModelCheck",
    "Stage",
    "register",
    "registered",
]


class Stage(StrEnum):
    """Where in a run a check runs."""

    ARTIFACT = "artifact"
    CELL = "cell"
    MODEL = "model"
    EVIDENCE = "evidence"


@dataclass(frozen=True)
class Artifact:
    """One resolved model file or folder, as the artifact and model stages see it."""

    playbook: Playbook
    ref: CellRef
    """``model.format.quantization``; records of artifact checks carry it."""
    path: Path
    origin: str
    """``local``, ``hub`` or ``converted`` (written by the reference converter)."""


class ArtifactCheck(Protocol):
    """Judges one artifact file before any cell loads it."""

    name: str

    def check(self, artifact: Artifact) -> Iterable[Finding]:
        """Findings for this artifact (one per gate it decides)."""
        ...


class ModelCheck(Protocol):
    """Judges a model across its artifacts (differential checks)."""

    name: str

    def check(self, playbook: Playbook, artifacts: Sequence[Artifact]) -> Iterable[Finding]:
        """Findings for the model; their records carry only the model's name."""
        ...


class CellCheck(Protocol):
    """Runs inside a cell, with the model loaded, before its scenarios."""

    name: str

    def run(self, session: Any) -> None:
        """Record findings through ``session`` (an :class:`apr_qa.execute.cell.CellSession`)."""
        ...


class EvidenceCheck(Protocol):
    """Decides gates over one model's records once every other check is decided."""

    name: str
    gates: tuple[str, ...]
    """The gates it decides: merging shards drops their records and asks again."""

    def applies(self, playbook: Playbook) -> bool:
        """Whether the playbook asks for it: an interrupted run records the gates of
        those that apply as not decided, and of no other."""
        ...

    def check(self, records: Sequence[Record], playbook: Playbook | None) -> Iterable[Finding]:
        """Findings over ``records``; ``playbook`` is None when re-deciding merged
        evidence, where settings come from the superseded records."""
        ...


_BUILTIN_MODULES = (
    "apr_qa.checks.artifact",
    "apr_qa.checks.probe",
    "apr_qa.checks.http_protocol",
    "apr_qa.checks.profile",
    "apr_qa.checks.golden",
    "apr_qa.checks.trace",
    "apr_qa.checks.garbage_rate",
    "apr_qa.checks.baseline",
    "apr_qa.checks.tensor_diff",
    "apr_qa.checks.tokenizer_parity",
    "apr_qa.checks.logit_compare",
    "apr_qa.checks.trace_diff",
    "apr_qa.checks.fingerprint",
    "apr_qa.checks.conversion",
)
_REGISTRY: dict[Stage, list[Any]] = {stage: [] for stage in Stage}
_loaded = False

C = TypeVar("C")


def register(stage: Stage) -> Callable[[type[C]], type[C]]:
    """Class decorator: an instance of the class runs at ``stage`` in every run."""

    def add(cls: type[C]) -> type[C]:
        name = getattr(cls, "name", cls.__name__)
        if any(getattr(c, "name", None) == name for c in _REGISTRY[stage]):
            raise ValueError(f"a {stage} check named {name!r} is already registered")
        _REGISTRY[stage].append(cls())
        return cls

    return add


def registered(stage: Stage) -> tuple[Any, ...]:
    """The checks of ``stage``, built-ins first, in registration order."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
    return tuple(_REGISTRY[stage])
