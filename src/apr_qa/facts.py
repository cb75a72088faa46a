"""Model facts: family, architecture, parameter count and size category, once per model.

The certification table shows what a model *is* beside how it scored; the
original guessed sizes from repository names ("Qwen2.5-Coder-7B"), which is how
a 7.6B model ends up filed as 7B. Here the parameter count is counted from the
tensor table of the model's artifact (no tensor data is read), the architecture
is the checkpoint's own ``model_type``, and the family is the playbook's
``model.family`` or, when it names none, the architecture.

Facts travel in ``evidence.jsonl`` as one line per model and run, beside the
records (they are not a check: nothing is judged, so they are never scored), and
reach summary.json through :func:`latest_facts`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "FACTS_KIND",
    "FACTS_SCHEMA_VERSION",
    "SIZE_CATEGORIES",
    "ModelFacts",
    "count_facts",
    "facts_schema",
    "format_parameters",
    "latest_facts",
    "parse_parameters",
    "size_category",
]

FACTS_KIND = "model-facts"
"""The ``kind`` that tells a facts line of ``evidence.jsonl`` from a record."""
FACTS_SCHEMA_VERSION = 1

SIZE_CATEGORIES: tuple[tuple[int, str], ...] = (
    (1_000_000_000, "tiny"),
    (4_000_000_000, "small"),
    (9_000_000_000, "medium"),
    (14_000_000_000, "large"),
    (40_000_000_000, "xlarge"),
)
"""(exclusive upper bound in parameters, category); ``huge`` above the last.

The names are the upstream playbooks' ``size_category`` values; their files
disagree with each other at the edges (a 3B model is "small" in one, "medium"
in another), so the bounds are ours, written down in docs/certification.md.
"""

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_PARAMS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBT]?)\s*$", re.IGNORECASE)


def size_category(parameters: int) -> str:
    """The size category of a parameter count (``tiny`` … ``huge``)."""
    for bound, name in SIZE_CATEGORIES:
        if parameters < bound:
            return name
    return "huge"


def parse_parameters(text: str) -> Decimal:
    """A parameter count written as an integer or with a suffix: ``"135M"``, ``"1.5B"``,
    ``"494032768"``. Raises ValueError for anything else; sorting compares these."""
    match = _PARAMS.match(text)
    if match is None:
        raise ValueError(f"not a parameter count: {text!r} (e.g. 494032768, 135M, 1.5B)")
    number, suffix = match.groups()
    return Decimal(number) * _SUFFIXES[suffix.upper()]


def format_parameters(parameters: int) -> str:
    """A counted parameter count as people write it: ``123K``, ``135M``, ``1.5B``, ``14B``.

    Three significant figures below a thousand of a unit, one decimal place under
    ten billions and none above (the seed README's ``1.5B``, ``7B``, ``32B``).
    """
    units = (("K", 10**3), ("M", 10**6), ("B", 10**9), ("T", 10**12))
    below = [i for i, (_, scale) in enumerate(units) if parameters >= scale]
    if not below:
        return str(parameters)
    index = below[-1]
    suffix, scale = units[index]
    value = Decimal(parameters) / scale
    places = Decimal("0.1") if value < 10 else Decimal(1)
    text = str(value.quantize(places, rounding=ROUND_HALF_UP)).removesuffix(".0")
    if text == "1000" and index + 1 < len(units):  # 999.6M is 1B, not "1000M"
        return f"1{units[index + 1][0]}"
    return f"{text}{suffix}"


@dataclass(frozen=True)
class ModelFacts:
    """What a model is, counted from one of its artifacts."""

    model: str
    family: str
    architecture: str
    parameters: int
    size_category: str
    artifact: str
    """``format.quantization`` of the artifact the facts were counted from."""
    run_id: str = ""
    timestamp: str = ""

    def to_json(self) -> dict[str, Any]:
        """The facts line of ``evidence.jsonl``."""
        return {
            "kind": FACTS_KIND,
            "schema_version": FACTS_SCHEMA_VERSION,
            "model": self.model,
            "family": self.family,
            "architecture": self.architecture,
            "parameters": self.parameters,
            "size_category": self.size_category,
            "artifact": self.artifact,
            "run_id": self.run_id,
            "timestamp": self.timestamp,
        }

    def summary_json(self) -> dict[str, Any]:
        """The ``facts`` of a model in summary.json."""
        data = self.to_json()
        for key in ("kind", "schema_version", "model", "run_id", "timestamp"):
            del data[key]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelFacts:
        """Rebuild facts written by :meth:`to_json` (validated beforehand)."""
        return cls(
            model=data["model"],
            family=data["family"],
            architecture=data["architecture"],
            parameters=int(data["parameters"]),
            size_category=data["size_category"],
            artifact=data["artifact"],
            run_id=data.get("run_id", ""),
            timestamp=data.get("timestamp", ""),
        )


@cache
def facts_schema() -> dict[str, Any]:
    """The JSON Schema of one facts line, shipped in the package."""
    import json

    text = resources.files("apr_qa.schemas").joinpath("facts.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def count_facts(
    model: str, path: Path, artifact: str, *, family: str | None = None
) -> ModelFacts | None:
    """Facts of ``model`` counted from the artifact at ``path`` (a checkpoint directory
    or a GGUF file). None when it cannot be read or holds no tensor: G0 says why, and
    a count of zero parameters is no fact."""
    from apr_qa.errors import AprQaError
    from apr_qa.models.readers import open_model

    try:
        with open_model(path) as reader:
            parameters = sum(info.numel for info in reader.tensor_infos())
            config = reader.config
            metadata = reader.metadata
    except (AprQaError, OSError, ValueError):
        return None
    if parameters <= 0:
        return None
    architecture = config.get("model_type") or metadata.get("general.architecture")
    architecture = str(architecture) if architecture else "unknown"
    return ModelFacts(
        model=model,
        family=family or architecture,
        architecture=architecture,
        parameters=parameters,
        size_category=size_category(parameters),
        artifact=artifact,
    )


def latest_facts(facts: Iterable[ModelFacts]) -> dict[str, ModelFacts]:
    """One set of facts per model: the newest run's (timestamp, then run id), so merged
    shards and repeated runs of a model show what was counted last, whatever the order."""
    newest: dict[str, ModelFacts] = {}
    for item in facts:
        held = newest.get(item.model)
        if held is None or (item.timestamp, item.run_id) > (held.timestamp, held.run_id):
            newest[item.model] = item
    return dict(sorted(newest.items()))
