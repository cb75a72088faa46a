"""The typed, normalized playbook: what every stage after the loader sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_GGUF_QUANT",
    "Device",
    "FailurePolicy",
    "Format",
    "Gates",
    "Matrix",
    "Modality",
    "ModelSpec",
    "OracleSpec",
    "Playbook",
    "Scenario",
    "SourceRef",
    "frozen_map",
]


class Modality(StrEnum):
    """How a model is asked: raw completion, chat template, or an HTTP server."""

    RUN = "run"
    CHAT = "chat"
    SERVE = "serve"


class Device(StrEnum):
    """Where a model runs (the playbook's ``backends``)."""

    CPU = "cpu"
    GPU = "gpu"


class Format(StrEnum):
    """How a model is stored."""

    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    APR = "apr"


class FailurePolicy(StrEnum):
    """What a failure stops: the model's work on a gateway failure, everything, or nothing."""

    STOP_ON_P0 = "stop-on-p0"
    FAIL_FAST = "fail-fast"
    COLLECT_ALL = "collect-all"


DEFAULT_FORMATS: tuple[str, ...] = ("safetensors", "gguf")
# A GGUF artifact with no quantization named: whatever GGUF the model provides.
DEFAULT_GGUF_QUANT = "auto"

EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return EMPTY


def frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only view of options (nested lists become tuples)."""

    def freeze(item: Any) -> Any:
        if isinstance(item, Mapping):
            return MappingProxyType({k: freeze(v) for k, v in item.items()})
        if isinstance(item, list):
            return tuple(freeze(v) for v in item)
        return item

    return freeze(value) if value else EMPTY


@dataclass(frozen=True)
class SourceRef:
    """Where something was written: playbook file and 1-based line and column."""

    file: str
    line: int
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class OracleSpec:
    """An oracle by registry name, with its options."""

    name: str
    options: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class ModelSpec:
    """The model under test and where its artifacts come from."""

    id: str
    hf_repo: str | None = None
    revision: str | None = None
    path: Path | None = None
    files: Mapping[str, str] = field(default_factory=_empty)
    family: str | None = None
    size_category: str | None = None
    trust_remote_code: bool = False
    expected_shape: Mapping[str, int] = field(default_factory=_empty)
    stands_in_for: str | None = None
    """The playbook's own model id when ``--model-path`` replaced it: results are
    labelled with the model actually tested (``id``), and this notes what the
    playbook named."""


@dataclass(frozen=True)
class Matrix:
    """The test matrix: which cells to build and how many scenarios each runs."""

    modalities: tuple[Modality, ...]
    backends: tuple[Device, ...]
    formats: tuple[Format, ...]
    quantizations: tuple[str, ...]
    scenario_count: int
    seed: int
    timeout_ms: int
    max_tokens: int
    temperature: float


@dataclass(frozen=True)
class Scenario:
    """One explicit scenario: a prompt or a conversation, judged by an oracle."""

    name: str
    source: SourceRef
    prompt: str | None = None
    messages: tuple[Mapping[str, str], ...] | None = None
    system: str | None = None
    oracle: OracleSpec | None = None
    expected: Any = None
    max_tokens: int | None = None
    temperature: float | None = None
    timeout_ms: int | None = None
    modalities: tuple[Modality, ...] | None = None
    tags: tuple[str, ...] = ()

    def applies_to(self, modality: str) -> bool:
        """Whether the scenario runs in a modality (conversations need chat or serve)."""
        if self.modalities is not None and modality not in self.modalities:
            return False
        return not (self.messages is not None and modality == "run")


@dataclass(frozen=True)
class Gates:
    """Which gateways are enforced, and the G4 garbage threshold."""

    g0_integrity: bool = True
    g1_model_loads: bool = True
    g2_basic_inference: bool = True
    g3_no_crashes: bool = True
    g4_output_quality: bool = True
    g4_max_garbage_rate: float = 0.25
    g2_probe: tuple[str, ...] = ()
    """The playbook's own G2 prompts (empty: the cell's explicit scenarios decide)."""


@dataclass(frozen=True)
class Playbook:
    """A loaded, validated playbook."""

    path: Path
    sha256: str
    name: str
    version: str
    description: str
    model: ModelSpec
    matrix: Matrix
    scenarios: tuple[Scenario, ...]
    gates: Gates
    oracles: tuple[OracleSpec, ...]
    failure_policy: FailurePolicy
    falsification_gates: tuple[str, ...]
    metadata: Mapping[str, Any]
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    """Sections later stages read (differential_tests, profile_ci, trace_payload, serve, certification)."""
    source: SourceRef | None = None
    warnings: tuple[str, ...] = ()
