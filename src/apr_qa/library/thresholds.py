"""Thresholds by size category: what a playbook may expect of a model of that size.

Time limits grow with the model (a 14B model on a CPU takes seconds per token);
throughput floors fall. The logit-comparison ceilings (KL, same-top-1) are
tighter than the checks' built-in defaults, which were set for 64-wide fixture
models with little redundancy: llama.cpp publishes, for 7-8B models, a mean KL
of about 1e-3 at q8_0 and 0.01-0.03 at 4 bits. The floors for sub-billion
models stay at the defaults; from 1B on they sit a few times above llama.cpp's
figures, so a sound conversion passes and a broken one (KL > 1) does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["SizeThresholds", "thresholds_for"]


@dataclass(frozen=True)
class SizeThresholds:
    """What a playbook for one size category asks for."""

    timeout_ms: int
    max_tokens: int
    min_throughput_cpu: float
    """Generated tokens per second on a CPU, at least."""
    min_throughput_gpu: float
    max_ttft_ms: float
    """Time to first token on a CPU, at most."""
    kl_ceiling: Mapping[str, float]
    """Mean KL(reference ‖ GGUF) per quantization, at most (``{}``: the checks' defaults)."""
    top1_floor: Mapping[str, float]
    """Same-top-1 rate per quantization, at least (``{}``: the checks' defaults)."""


_LARGE_KL = MappingProxyType(
    {"f16": 0.002, "q8_0": 0.01, "q6_k": 0.03, "q5_k_m": 0.05, "q4_k_m": 0.1}
)
_LARGE_TOP1 = MappingProxyType(
    {"f16": 0.98, "q8_0": 0.95, "q6_k": 0.92, "q5_k_m": 0.9, "q4_k_m": 0.85}
)
_NONE: Mapping[str, float] = MappingProxyType({})

_BY_SIZE: Mapping[str, SizeThresholds] = MappingProxyType(
    {
        "tiny": SizeThresholds(30_000, 32, 20.0, 100.0, 2_000, _NONE, _NONE),
        "small": SizeThresholds(120_000, 64, 4.0, 40.0, 5_000, _LARGE_KL, _LARGE_TOP1),
        "medium": SizeThresholds(300_000, 64, 1.5, 25.0, 15_000, _LARGE_KL, _LARGE_TOP1),
        "large": SizeThresholds(600_000, 64, 0.5, 15.0, 30_000, _LARGE_KL, _LARGE_TOP1),
        "xlarge": SizeThresholds(1_200_000, 64, 0.2, 8.0, 60_000, _LARGE_KL, _LARGE_TOP1),
        "huge": SizeThresholds(2_400_000, 64, 0.05, 4.0, 120_000, _LARGE_KL, _LARGE_TOP1),
    }
)


def thresholds_for(size_category: str) -> SizeThresholds:
    """The thresholds of a size category (``tiny`` … ``huge``)."""
    return _BY_SIZE[size_category]
