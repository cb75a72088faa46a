"""The catalogue of gates: every check apr-qa records names one of these.

IDs reuse the original tool's where it had one, so an upstream playbook's
``falsification_gates`` list means something here. Rules are written out in
docs/gates.md beside the test that shows each gate failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BASELINE_GATES",
    "CATEGORY_WEIGHTS",
    "GATEWAYS",
    "PROFILE_GATES",
    "Capability",
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


class Capability(StrEnum):
    """A piece of apr-qa not built yet; each planned gate names the one that will record it."""

    TENSOR_DIFF = "tensor diff"
    TOKENIZER_PARITY = "tokenizer parity"
    LOGIT_COMPARISON = "logit comparison"
    TIMEOUTS = "stability timeouts"
    PROFILE = "profile CI"
    GOLDEN = "golden outputs"
    SERVE = "serve"


@dataclass(frozen=True)
class Gate:
    """One named check: what it holds, how bad a failure is, where it scores.

    ``planned`` names the capability that will record the gate; a planned gate
    is in the catalogue so that playbooks and the mutant table can name it, but
    no evidence of it is produced yet. None: the engine records it today.
    """

    id: str
    title: str
    category: Category
    severity: Severity
    gateway: str | None = None  # "G0".."G4" for gateway checks
    planned: Capability | None = None

    @property
    def is_gateway(self) -> bool:
        """Whether a failure of this gate zeroes the score."""
        return self.gateway is not None

    @property
    def is_implemented(self) -> bool:
        """Whether the engine records this gate today (not ``planned``)."""
        return self.planned is None


def _g(
    gid: str,
    title: str,
    category: Category,
    severity: Severity = Severity.P1,
    *,
    planned: Capability | None = None,
) -> Gate:
    gateway = gid[:2] if category is Category.GATEWAY else None
    return Gate(gid, title, category, Severity.P0 if gateway else severity, gateway, planned)


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
    _g(
        "F-STAB-TIMEOUT-001",
        "scenario finishes within its timeout",
        Category.STAB,
        planned=Capability.TIMEOUTS,
    ),
    _g("F-EDGE-001", "edge-case prompt handled without garbage or crash", Category.EDGE),
    # Differential checks between formats: tensors.
    _g(
        "F-ROSETTA-DIFF-001",
        "no transposed dimensions across formats",
        Category.COMP,
    ),
    _g("F-ROSETTA-DIFF-002", "shapes match after conversion", Category.COMP),
    _g(
        "F-ROSETTA-DIFF-003",
        "dequantized tensors within the quantization's tolerance of the reference",
        Category.COMP,
    ),
    # Differential checks between formats: inference.
    _g("F-ROSETTA-INF-001", "argmax agreement across formats", Category.COMP),
    _g("F-ROSETTA-INF-002", "logit divergence within tolerance", Category.COMP),
    _g("F-ROSETTA-INF-003", "no PAD token flood", Category.COMP, Severity.P0),
    # Tokenizers across formats.
    _g("F-TOK-PARITY-001", "tokenizers agree across formats", Category.COMP),
    _g("F-TOK-PARITY-002", "special token ids agree across formats", Category.COMP),
    _g(
        "F-TOK-PARITY-003",
        "chat template renders the same text in every format",
        Category.COMP,
    ),
    # Fingerprints and role statistics (never "norm mean close to 1": real norms are not).
    _g("F-ROSETTA-FP-001", "tensor statistics finite in every format", Category.COMP),
    _g("F-ROSETTA-FP-002", "tensor checksums match the reference", Category.COMP),
    _g("F-ROSETTA-FP-003", "tensor names and shapes match the reference", Category.COMP),
    _g(
        "F-ROSETTA-STATS-001",
        "norm statistics within tolerance of the reference",
        Category.COMP,
    ),
    _g(
        "F-ROSETTA-STATS-002",
        "embedding and output statistics within tolerance of the reference",
        Category.COMP,
    ),
    _g(
        "F-ROSETTA-STATS-003",
        "attention statistics within tolerance of the reference",
        Category.COMP,
    ),
    _g("F-ROSETTA-STATS-004", "FFN statistics within tolerance of the reference", Category.COMP),
    _g("F-ROSETTA-STATS-005", "no norm's scale is all zeros", Category.COMP),
    _g("F-ROSETTA-STATS-006", "every norm's scale has std > 0", Category.COMP),
    # Per-layer activations.
    _g("F-TRACE-PAYLOAD-001", "no layer's activations hold NaN or Inf", Category.STAB),
    _g("F-TRACE-PAYLOAD-002", "traced output is not garbage", Category.STAB),
    _g("F-TRACE-PAYLOAD-003", "no layer's activations explode", Category.STAB),
    _g(
        "F-TRACE-DIFF-001",
        "every layer's hidden states agree with the reference artifact's",
        Category.COMP,
    ),
    # Conversion: the six bug classes.
    _g("F-CONV-001", "conversion keeps the embedding orientation", Category.COMP),
    _g("F-CONV-002", "conversion keeps the tokenizer", Category.COMP),
    _g("F-CONV-003", "conversion keeps the weights uncorrupted", Category.COMP),
    _g("F-CONV-004", "conversion keeps every tensor's shape", Category.COMP),
    _g("F-CONV-005", "converted model answers as the source does", Category.COMP),
    _g("F-CONV-006", "conversion raises no unclassified defect", Category.COMP),
    # Serve: the protocol an OpenAI-compatible server owes its clients (checks/http_protocol.py).
    _g("F-HTTP-001", "server health endpoint answers", Category.STAB),
    _g("F-HTTP-002", "chat completions answer with valid JSON", Category.STAB),
    _g("F-HTTP-003", "streamed completions are well-formed SSE", Category.STAB),
    _g("F-HTTP-004", "text completions answer with valid JSON", Category.STAB),
    _g("F-HTTP-005", "no template token or tokenizer artefact leaks", Category.EDGE),
    _g("F-HTTP-006", "usage counts present and consistent", Category.STAB),
    _g("F-HTTP-007", "empty messages are refused (4xx) or answered, never a 5xx", Category.EDGE),
    _g("F-HTTP-008", "malformed JSON gets an error status and the server stays up", Category.EDGE),
    _g("F-HTTP-009", "a huge max_tokens is refused or bounded", Category.EDGE),
    _g("F-HTTP-010", "parallel requests all complete in time", Category.STAB),
    _g("F-HTTP-011", "temperature 0 gives the same text twice", Category.STAB),
    _g("F-HTTP-012", "the server stops cleanly on SIGTERM", Category.STAB),
    _g("F-HTTP-013", "a system prompt is honoured", Category.QUAL, planned=Capability.SERVE),
    _g("F-HTTP-014", "multi-turn context is kept", Category.QUAL, planned=Capability.SERVE),
    # Performance (checks/profile.py) and regression.
    _g("F-PROFILE-CI-001", "throughput at or above the floor", Category.PERF),
    _g("F-PROFILE-CI-002", "p99 latency at or below the ceiling", Category.PERF),
    _g("F-PROFILE-CI-003", "p50 latency at or below the ceiling", Category.PERF),
    _g("F-REGR-BASE-001", "no check regressed against the baseline run", Category.REGR),
    _g("F-REGR-BASE-002", "MQS dropped no more than allowed from the baseline", Category.REGR),
    _g(
        "F-REGR-BASE-003",
        "profile figures within tolerance of the baseline's",
        Category.REGR,
        planned=Capability.PROFILE,
    ),
    _g("F-REGR-GOLDEN-001", "output matches the golden reference", Category.REGR),
)

GATEWAYS: tuple[str, ...] = ("G0", "G1", "G2", "G3", "G4")

BASELINE_GATES: tuple[str, ...] = ("F-REGR-BASE-001", "F-REGR-BASE-002")
"""The regression gates a run decides against ``--baseline``: a falsified one fails CI
(exit 1) whatever the grade, since "worse than what we shipped" is the question."""

PROFILE_GATES: tuple[str, ...] = ("F-PROFILE-CI-001", "F-PROFILE-CI-002", "F-PROFILE-CI-003")
"""The profile assertions: a falsified one fails CI (exit 1) whatever the grade, as a
release that halves throughput is a regression even when every answer is right."""

_BY_ID: dict[str, Gate] = {g.id: g for g in _GATES}


def all_gates() -> tuple[Gate, ...]:
    """Every gate in the catalogue, implemented and planned."""
    return _GATES


def lookup(gate_id: str) -> Gate | None:
    """The catalogue entry for an ID; None when it has none, whatever its prefix.

    An ID under a family the original defined (``F-CONV-007``) is still unknown
    here: a gate nobody wrote down has no rule, so nothing can be scored by it.
    """
    return _BY_ID.get(gate_id)


def scenario_gate(modality: str, backend: str) -> str:
    """The scenario-oracle gate ID for a cell (F-A1..F-A6)."""
    index = {"run": 1, "chat": 2, "serve": 3}[modality] + (3 if backend == "gpu" else 0)
    return f"F-A{index}-001"
