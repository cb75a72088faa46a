"""G0-FORMAT-GGUF-001: a GGUF the playbook asks for, and the publisher does not ship,
is produced by the reference converter; a conversion that fails falsifies it.

This is decided while artifacts are resolved (a failed conversion leaves no
artifact for the artifact stage to see), so it is a function, not a stage check.
"""

from __future__ import annotations

from collections.abc import Iterator

from apr_qa.checks.finding import Finding
from apr_qa.models.sources import Resolution

__all__ = ["GATE", "conversion_findings"]

GATE = "G0-FORMAT-GGUF-001"


def conversion_findings(resolution: Resolution) -> Iterator[tuple[str, Finding]]:
    """``(quantization, finding)`` for every GGUF the converter produced or failed to."""
    for artifact in resolution.artifacts:
        if artifact.origin == "converted":
            reason = (
                f"gguf {artifact.quantization}: produced by the reference converter "
                "from the safetensors checkpoint"
            )
            yield artifact.quantization, Finding(GATE, True, reason)
    for missing in resolution.missing:
        if missing.format == "gguf" and missing.why == "conversion-failed":
            yield missing.quantization, Finding(GATE, False, missing.reason)
