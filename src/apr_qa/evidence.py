"""Evidence: one JSON record per decided check, streamed to ``evidence.jsonl``.

The evidence file is the contract between execution and everything after it:
scoring and reports are pure functions of these records, so a run can be
re-scored, re-rendered or merged across shards without loading a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from apr_qa.bounded import JsonOutOfBounds, loads_bounded
from apr_qa.errors import UsageError
from apr_qa.gates import Category, Severity

if TYPE_CHECKING:
    from apr_qa.facts import ModelFacts

__all__ = [
    "MAX_OUTPUT_CHARS",
    "MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "EvidenceWriter",
    "HaltKind",
    "Outcome",
    "ReadResult",
    "Record",
    "ScenarioInfo",
    "bound_output",
    "cell_name",
    "check_key",
    "decide",
    "host_info",
    "now_utc",
    "read_evidence",
    "record_schema",
]

SCHEMA_VERSION = 2
"""Version 2 added ``key``, ``halted``, ``output_chars``, ``output_sha256`` and
``scenario.id``; version 1 records still read (their key is derived on reading).
``stands_in_for`` is an optional version-2 field: records without it read as None."""
MAX_OUTPUT_CHARS = 4096
# One record line, read bounded: outputs are cut at MAX_OUTPUT_CHARS, but prompts
# (the very-long edge cases) and reasons are not, so leave room far above them.
MAX_RECORD_BYTES = 8 * 1024 * 1024


class Outcome(StrEnum):
    """What a refutation attempt came to. Only ``corroborated`` counts as passed."""

    CORROBORATED = "corroborated"
    FALSIFIED = "falsified"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    CRASHED = "crashed"


def decide(passed: bool | None, *, timed_out: bool = False) -> Outcome:
    """The one rule from a verdict to an outcome, for every check and oracle.

    ``passed`` is None when nothing was compared (skipped, never passed); a
    judgment that ran out of time is a timeout, whatever it had seen so far.
    """
    if timed_out:
        return Outcome.TIMEOUT
    if passed is None:
        return Outcome.SKIPPED
    return Outcome.CORROBORATED if passed else Outcome.FALSIFIED


class HaltKind(StrEnum):
    """Why a check was not run although it was planned."""

    STOP_ON_P0 = "stop-on-p0"
    FAIL_FAST = "fail-fast"
    INTERRUPTED = "interrupted"


def cell_name(model: str, *coordinates: str | None) -> str:
    """``model.format.quant.backend.modality``, stopping where the coordinates stop
    (an artifact check is ``model.format.quant``, a model check ``model``)."""
    parts = [model, *coordinates]
    while len(parts) > 1 and parts[-1] is None:
        parts.pop()
    return ".".join(p or "-" for p in parts)


def check_key(
    model: str,
    format: str | None,
    quantization: str | None,
    backend: str | None,
    modality: str | None,
    gate: str,
    scenario_id: str | None,
) -> str:
    """The stable key of a check: the same check in two runs has the same key.

    Two runs (or two shards) are compared, deduplicated and merged by it; it
    holds nothing that changes from run to run (ids, times, hosts).
    """
    parts = (model, format, quantization, backend, modality, gate, scenario_id)
    return "|".join(p or "-" for p in parts)


def bound_output(text: str | None) -> tuple[str | None, int | None, str | None]:
    """``(kept text, full length, sha256 of the full text)`` for an output.

    Evidence keeps at most ``MAX_OUTPUT_CHARS`` of an output; the length and the
    hash of the whole text survive, so two runs can still tell whether their
    outputs were identical.
    """
    if text is None:
        return None, None, None
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    kept = text if len(text) <= MAX_OUTPUT_CHARS else text[:MAX_OUTPUT_CHARS] + "…[truncated]"
    return kept, len(text), digest


@dataclass(frozen=True)
class ScenarioInfo:
    """Where a scenario came from and what it asked. ``id`` is stable across runs."""

    name: str
    id: str | None = None
    oracle: str | None = None
    prompt: str | None = None
    messages: tuple[Mapping[str, str], ...] | None = None
    seed: int | None = None
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Record:
    """One decided check. Field order is the order written to disk."""

    run_id: str
    record_id: str
    gate: str
    category: Category
    severity: Severity
    outcome: Outcome
    reason: str
    model: str
    key: str = ""
    """Stable across runs (:func:`check_key`); derived from the coordinates when empty."""
    format: str | None = None
    quantization: str | None = None
    backend: str | None = None
    modality: str | None = None
    scenario: ScenarioInfo | None = None
    output: str | None = None
    output_chars: int | None = None
    output_sha256: str | None = None
    expected: Any = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    counterexample: str | None = None
    halted: HaltKind | None = None
    playbook: str | None = None
    playbook_sha256: str | None = None
    stands_in_for: str | None = None
    """The playbook's own model id when ``--model-path`` replaced the model: ``model``
    names what was actually tested, this what the playbook named."""
    shard: str | None = None
    host: Mapping[str, str] = field(default_factory=dict)
    timestamp: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.key:
            scenario = self.scenario
            scenario_id = None if scenario is None else scenario.id or scenario.name
            key = check_key(
                self.model,
                self.format,
                self.quantization,
                self.backend,
                self.modality,
                self.gate,
                scenario_id,
            )
            object.__setattr__(self, "key", key)

    @property
    def cell(self) -> str:
        """``model.format.quant.backend.modality`` (the JUnit classname).

        Checks of a whole artifact (G0) or model (G4) stop where their
        coordinates stop: ``model.format.quant`` or ``model``.
        """
        return cell_name(self.model, self.format, self.quantization, self.backend, self.modality)

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-safe mapping, output bounded."""
        data = dataclasses.asdict(self)
        for name in ("outcome", "category", "severity", "halted"):
            if data[name] is not None:
                data[name] = str(data[name])
        if self.output is not None and len(self.output) > MAX_OUTPUT_CHARS + 20:
            data["output"] = bound_output(self.output)[0]
        if data["scenario"] is not None and data["scenario"]["messages"] is not None:
            data["scenario"]["messages"] = [dict(m) for m in data["scenario"]["messages"]]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        """Rebuild a record written by :meth:`to_json` (validated beforehand)."""
        values = dict(data)
        values["outcome"] = Outcome(values["outcome"])
        values["category"] = Category(values["category"])
        values["severity"] = Severity(values["severity"])
        if values.get("halted") is not None:
            values["halted"] = HaltKind(values["halted"])
        scenario = values.get("scenario")
        if scenario is not None:
            scenario = dict(scenario)
            if scenario.get("messages") is not None:
                scenario["messages"] = tuple(dict(m) for m in scenario["messages"])
            values["scenario"] = ScenarioInfo(**scenario)
        return cls(**values)  # a version-1 record gets its key from its coordinates


@cache
def host_info() -> dict[str, str]:
    """Host and library versions, stamped on every record."""
    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
    for dist in ("apr-qa", "torch", "transformers", "llama-cpp-python", "gguf", "safetensors"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return info


def now_utc() -> str:
    """An ISO-8601 UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class EvidenceWriter:
    """Appends records to a JSONL file, flushed to the OS as they are decided.

    A crash or a cancel of apr-qa loses nothing that was already written;
    ``fsync=True`` also survives a crash of the machine, at a cost per record.
    """

    def __init__(self, path: Path, *, fsync: bool = False, append: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # A run replaces the evidence of the last run in its directory (the run's
        # lock on the directory keeps a concurrent run out).
        self._fh: IO[bytes] = path.open("ab" if append else "wb")
        self._fsync = fsync
        self.count = 0

    def write(self, record: Record) -> None:
        """Append one record and make it durable."""
        line = json.dumps(record.to_json(), ensure_ascii=False) + "\n"
        # A lone surrogate in model output cannot be UTF-8; written as its JSON
        # escape it stays valid JSON and reads back as the same string.
        self._fh.write(line.encode("utf-8", errors="backslashreplace"))
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())
        self.count += 1

    def write_facts(self, facts: ModelFacts) -> None:
        """Append a model's facts (a line of its own kind, not a record)."""
        line = json.dumps(facts.to_json(), ensure_ascii=False) + "\n"
        self._fh.write(line.encode("utf-8", errors="backslashreplace"))
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def write_all(self, records: Iterable[Record]) -> None:
        """Append several records."""
        for record in records:
            self.write(record)

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> EvidenceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@cache
def record_schema() -> dict[str, Any]:
    """The JSON Schema of one evidence record, shipped in the package."""
    text = resources.files("apr_qa.schemas").joinpath("evidence.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass
class ReadResult:
    """Records read from evidence files, and what could not be used (one line each)."""

    records: list[Record]
    warnings: list[str]
    facts: list[ModelFacts] = field(default_factory=list)
    """Model facts lines (:mod:`apr_qa.facts`), every one read; ``latest_facts`` picks."""


def _iter_lines(path: Path) -> Iterator[tuple[int, str | None, bool]]:
    """``(line number, text, complete)``; text is None for a line over MAX_RECORD_BYTES,
    which is read past in bounded chunks, never held whole."""
    with path.open("rb") as fh:
        number = 0
        while raw := fh.readline(MAX_RECORD_BYTES + 1):
            number += 1
            if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
                while (rest := fh.readline(MAX_RECORD_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield number, None, True
                continue
            yield number, raw.decode("utf-8", errors="replace"), raw.endswith(b"\n")


def read_evidence(paths: Iterable[Path]) -> ReadResult:
    """Read and validate evidence files, keeping everything that can be kept.

    A truncated last line (a killed run) is reported and skipped; so are records
    of a newer schema version and records that fail the schema. A file that
    does not exist or is not evidence at all is a UsageError.
    """
    from jsonschema import Draft202012Validator

    from apr_qa.facts import FACTS_KIND, ModelFacts, facts_schema

    validator = Draft202012Validator(record_schema())
    facts_validator = Draft202012Validator(facts_schema())
    records: list[Record] = []
    warnings: list[str] = []
    facts: list[ModelFacts] = []
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path}: evidence file not found")
        seen = 0
        for number, line, complete in _iter_lines(path):
            where = f"{path}:{number}"
            if line is None:
                warnings.append(f"{where}: line longer than {MAX_RECORD_BYTES} bytes, skipped")
                continue
            if not line.strip():
                continue
            try:
                data = loads_bounded(line)
            except JsonOutOfBounds as exc:
                warnings.append(f"{where}: {exc}, skipped")
                continue
            except json.JSONDecodeError:
                kind = "truncated last line" if not complete else "not JSON"
                warnings.append(f"{where}: {kind}, skipped")
                continue
            if not isinstance(data, dict):
                warnings.append(f"{where}: not an evidence record, skipped")
                continue
            if data.get("kind") == FACTS_KIND:
                problem = next(iter(facts_validator.iter_errors(data)), None)
                if problem is not None:
                    at = "/".join(str(p) for p in problem.absolute_path) or "facts"
                    warnings.append(
                        f"{where}: invalid model facts ({at}: {problem.message}), skipped"
                    )
                else:
                    facts.append(ModelFacts.from_json(data))
                continue
            version = data.get("schema_version")
            if isinstance(version, int) and version > SCHEMA_VERSION:
                warnings.append(
                    f"{where}: schema_version {version} is newer than this apr-qa reads "
                    f"({SCHEMA_VERSION}); record skipped (upgrade apr-qa)"
                )
                continue
            error = next(iter(validator.iter_errors(data)), None)
            if error is not None:
                at = "/".join(str(p) for p in error.absolute_path) or "record"
                warnings.append(f"{where}: invalid record ({at}: {error.message}), skipped")
                continue
            records.append(Record.from_json(data))
            seen += 1
        if seen == 0:
            warnings.append(f"{path}: no evidence records")
    return ReadResult(records, warnings, facts)
