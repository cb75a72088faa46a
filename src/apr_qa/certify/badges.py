"""One shields.io endpoint badge per model, for a model card to embed.

``https://img.shields.io/endpoint?url=<raw URL of the JSON>`` renders it; the
JSON is the endpoint schema (https://shields.io/badges/endpoint-badge):
``schemaVersion``, ``label``, ``message``, ``color``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from apr_qa.certify.registry import CertifyError, Row
from apr_qa.certify.table import STATUS_COLOURS
from apr_qa.score import Status

__all__ = ["badge_file", "badge_json", "badges"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def badge_file(model: str) -> str:
    """The badge's file name: ``org__name.json`` (``/`` would make a folder)."""
    return _UNSAFE.sub("-", model.replace("/", "__")).strip(".") + ".json"


def badge_json(row: Row) -> dict[str, Any]:
    """The endpoint document: status, MQS and grade, coloured by status."""
    pending = row.status == Status.PENDING
    message = "pending" if pending else f"{row.status} · MQS {row.mqs} ({row.grade})"
    return {
        "schemaVersion": 1,
        "label": "apr-qa",
        "message": message,
        "color": STATUS_COLOURS.get(row.status, "lightgray"),
    }


def _newest(rows: Sequence[Row]) -> Row:
    # A Pending row (no evidence, no time) yields to any certified one.
    return max(rows, key=lambda r: (r.last_certified, r.playbook))


def badges(rows: Sequence[Row]) -> dict[str, str]:
    """File name -> JSON text, one per model (its newest row when several playbooks)."""
    by_model: dict[str, list[Row]] = {}
    for row in rows:
        by_model.setdefault(row.model, []).append(row)
    out: dict[str, str] = {}
    owner: dict[str, str] = {}
    for model, mine in sorted(by_model.items()):
        name = badge_file(model)
        if name in owner:
            raise CertifyError(
                [f"models {owner[name]!r} and {model!r} would share the badge file {name}"]
            )
        owner[name] = model
        out[name] = json.dumps(badge_json(_newest(mine)), indent=2, ensure_ascii=False) + "\n"
    return out
