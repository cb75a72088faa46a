"""The six bug classes of a GGUF conversion, decided from tensor- and token-level
evidence (never from what a converter printed).

A conversion's evidence is what the differential checks measured between the
checkpoint and the GGUF it was converted to (:class:`ConversionEvidence`);
:func:`classify` names the class of each defect seen:

- ``embedding transposition`` (F-CONV-001): the token embedding or output
  projection stored transposed;
- ``tokenizer missing`` (F-CONV-002): the GGUF has no vocabulary, or tokenizes
  the playbook's texts differently, or its special tokens moved;
- ``weight corruption`` (F-CONV-003): a tensor beyond its quantization's
  tolerance, or rows in the wrong rotary order;
- ``shape mismatch`` (F-CONV-004): a tensor missing, or of another shape;
- ``semantic drift`` (F-CONV-005): answers or next-token distributions differ
  while tensors and tokens agree (hyperparameters: norm epsilon, rope base);
- ``unknown`` (F-CONV-006): no GGUF was produced, or converting the same input
  twice gave different bytes, with no tensor or token evidence to explain it.

Drift is the symptom of every other class: it is attributed to one only when
nothing structural explains it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["GATE_OF", "BugClass", "ConversionEvidence", "classify"]


class BugClass(StrEnum):
    """What went wrong in a conversion."""

    EMBEDDING_TRANSPOSITION = "embedding transposition"
    TOKENIZER_MISSING = "tokenizer missing"
    WEIGHT_CORRUPTION = "weight corruption"
    SHAPE_MISMATCH = "shape mismatch"
    SEMANTIC_DRIFT = "semantic drift"
    UNKNOWN = "unknown"


GATE_OF: Mapping[BugClass, str] = {
    BugClass.EMBEDDING_TRANSPOSITION: "F-CONV-001",
    BugClass.TOKENIZER_MISSING: "F-CONV-002",
    BugClass.WEIGHT_CORRUPTION: "F-CONV-003",
    BugClass.SHAPE_MISMATCH: "F-CONV-004",
    BugClass.SEMANTIC_DRIFT: "F-CONV-005",
    BugClass.UNKNOWN: "F-CONV-006",
}


def _none() -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class ConversionEvidence:
    """What was measured on one conversion; each field lists the problems seen.

    ``produced`` is False when the converter left no GGUF (``failure`` says how it
    ended); ``reproducible`` is None when the conversion was not repeated.
    """

    produced: bool
    failure: str = ""
    reproducible: bool | None = None
    embedding_layout: tuple[str, ...] = field(default_factory=_none)
    """The token embedding or output projection transposed."""
    other_layout: tuple[str, ...] = field(default_factory=_none)
    """Any other tensor in the wrong layout (q/k rotary order)."""
    shapes: tuple[str, ...] = field(default_factory=_none)
    values: tuple[str, ...] = field(default_factory=_none)
    tokens: tuple[str, ...] = field(default_factory=_none)
    drift: tuple[str, ...] = field(default_factory=_none)
    unavailable: tuple[str, ...] = field(default_factory=_none)
    """Comparisons that could not be made (the GGUF did not load): no evidence."""


def classify(evidence: ConversionEvidence) -> dict[BugClass, list[str]]:
    """Each bug class seen, with the problems that show it (empty: a clean conversion)."""
    found: dict[BugClass, list[str]] = {}

    def add(cls: BugClass, problems: Sequence[str]) -> None:
        if problems:
            found.setdefault(cls, []).extend(problems)

    if not evidence.produced:
        add(BugClass.UNKNOWN, [f"the converter produced no GGUF: {evidence.failure}"])
        return found
    add(BugClass.EMBEDDING_TRANSPOSITION, evidence.embedding_layout)
    add(BugClass.SHAPE_MISMATCH, evidence.shapes)
    add(BugClass.WEIGHT_CORRUPTION, [*evidence.other_layout, *evidence.values])
    add(BugClass.TOKENIZER_MISSING, evidence.tokens)
    if not found:
        add(BugClass.SEMANTIC_DRIFT, evidence.drift)
    if evidence.reproducible is False:
        add(BugClass.UNKNOWN, ["converting the same checkpoint twice gave different bytes"])
    if not found and evidence.unavailable:
        add(BugClass.UNKNOWN, [f"the GGUF could not be compared: {evidence.unavailable[0]}"])
    return found
