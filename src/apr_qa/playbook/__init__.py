"""Playbooks: YAML in, a typed and validated `Playbook` out, every value located."""

from apr_qa.playbook.loader import load_playbook
from apr_qa.playbook.model import (
    Gates,
    Matrix,
    ModelSpec,
    OracleSpec,
    Playbook,
    Scenario,
    SourceRef,
)
from apr_qa.playbook.validate import playbook_schema

__all__ = [
    "Gates",
    "Matrix",
    "ModelSpec",
    "OracleSpec",
    "Playbook",
    "Scenario",
    "SourceRef",
    "load_playbook",
    "playbook_schema",
]
