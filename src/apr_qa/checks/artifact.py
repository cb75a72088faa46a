"""Artifact-stage checks: G0 integrity, once per artifact before any cell loads it."""

from __future__ import annotations

from collections.abc import Iterable

from apr_qa.checks import Artifact, Stage, register
from apr_qa.checks.finding import Finding

__all__ = ["Integrity"]


@register(Stage.ARTIFACT)
class Integrity:
    """G0-INTEGRITY-001..005 (:func:`apr_qa.checks.integrity.check_integrity`)."""

    name = "integrity"

    def check(self, artifact: Artifact) -> Iterable[Finding]:
        """The integrity findings, unless the playbook switched G0 off."""
        if not artifact.playbook.gates.g0_integrity:
            return []
        from apr_qa.checks.integrity import check_integrity

        expected = dict(artifact.playbook.model.expected_shape)
        return check_integrity(artifact.path, expected_shape=expected)
