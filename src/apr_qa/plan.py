"""Matrix expansion: playbooks in, cells and scenarios out, with stable ids and seeds.

A cell is one model artifact (format x quantization) x backend x modality.
Quantizations multiply GGUF artifacts only; a safetensors checkpoint is one
artifact in its stored dtype. Scenarios are enumerated lazily, so planning a
million tests costs the cells, not the tests.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from apr_qa.errors import UsageError
from apr_qa.playbook.model import Playbook, Scenario, SourceRef

__all__ = [
    "GENERATED_FAMILIES",
    "MAX_SHARDS",
    "STORED",
    "Cell",
    "Plan",
    "PlannedScenario",
    "Shard",
    "build_plan",
    "derive_seed",
    "parse_shard",
]

# More shards than any CI matrix runs (GitHub Actions allows 256 jobs per matrix).
MAX_SHARDS = 10_000
STORED = "stored"  # the quantization label of a safetensors checkpoint: its own dtype
GENERATED_FAMILIES: tuple[str, ...] = (
    "arithmetic",
    "unicode",
    "whitespace",
    "injection",
    "determinism",
)

# Relative cost of one scenario, for balancing shards (measured order of magnitude, not exact).
_MODALITY_COST = {"run": 1.0, "chat": 1.1, "serve": 1.5}
_FORMAT_COST = {"safetensors": 1.5, "gguf": 1.0, "apr": 1.0}
_BACKEND_COST = {"cpu": 1.0, "gpu": 0.4}
_LOAD_COST = 10.0  # loading the model once per cell, in scenario-equivalents


def derive_seed(base: int, key: str) -> int:
    """A 31-bit seed from the playbook seed and a stable key: same inputs, same seed."""
    digest = hashlib.blake2b(f"{base}:{key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Shard:
    """Shard K of N (1-based), as given by ``--shard K/N``."""

    index: int
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse_shard(text: str) -> Shard:
    """Parse ``K/N`` with 1 <= K <= N <= MAX_SHARDS; anything else is a usage error."""
    shown = repr(text if len(text) <= 40 else text[:37] + "...")
    # ASCII digits only (int() also reads other scripts' digits), and few of them:
    # sharding allocates per shard, and a 20-digit N is a memory error, not a plan.
    match = re.fullmatch(r"[ \t]*([0-9]+)[ \t]*/[ \t]*([0-9]+)[ \t]*", text)
    if not match:
        raise UsageError(f"--shard {shown}: expected K/N, for example 2/4")
    index_digits, total_digits = (match[1].lstrip("0") or "0"), (match[2].lstrip("0") or "0")
    width = len(str(MAX_SHARDS))
    if len(total_digits) > width or int(total_digits) > MAX_SHARDS:
        raise UsageError(f"--shard {shown}: N must be at most {MAX_SHARDS}")
    total = int(total_digits)
    index = int(index_digits) if len(index_digits) <= width else MAX_SHARDS + 1
    if total < 1 or not 1 <= index <= total:
        raise UsageError(f"--shard {shown}: K must be between 1 and N (N >= 1)")
    return Shard(index, total)


@dataclass(frozen=True)
class PlannedScenario:
    """One scenario of one cell: explicit (from the playbook) or generated (property-based)."""

    id: str
    name: str
    kind: str  # "explicit" | "generated"
    family: str
    seed: int
    scenario: Scenario | None = None

    @property
    def source(self) -> SourceRef | None:
        """Where the scenario was written, for explicit scenarios."""
        return self.scenario.source if self.scenario else None


@dataclass(frozen=True)
class Cell:
    """One artifact x backend x modality; its worker loads the model once."""

    playbook: Playbook = field(repr=False)
    format: str
    quantization: str
    backend: str
    modality: str
    explicit: tuple[Scenario, ...]
    generated: int

    @property
    def id(self) -> str:
        """Stable id: ``playbook/format-quant/backend/modality``."""
        return (
            f"{self.playbook.name}/{self.format}-{self.quantization}/{self.backend}/{self.modality}"
        )

    @property
    def model(self) -> str:
        """The model id under test."""
        return self.playbook.model.id

    @property
    def scenario_count(self) -> int:
        """Scenarios the cell runs."""
        return len(self.explicit) + self.generated

    @property
    def cost(self) -> float:
        """Estimated relative cost, for balancing shards."""
        per = (
            _MODALITY_COST[self.modality] * _FORMAT_COST[self.format] * _BACKEND_COST[self.backend]
        )
        return _LOAD_COST + per * self.scenario_count

    def scenarios(self) -> Iterator[PlannedScenario]:
        """The cell's scenarios, in order; seeds depend on the scenario, not the cell,
        so every cell asks the same generated questions and formats can be compared."""
        seed = self.playbook.matrix.seed
        prefix = f"{self.id}#"
        for scenario in self.explicit:
            yield PlannedScenario(
                prefix + scenario.name,
                scenario.name,
                "explicit",
                "explicit",
                derive_seed(seed, scenario.name),
                scenario,
            )
        for name, family, scenario_seed in _generated(seed, self.generated):
            yield PlannedScenario(prefix + name, name, "generated", family, scenario_seed)


@lru_cache(maxsize=64)
def _generated(seed: int, count: int) -> tuple[tuple[str, str, int], ...]:
    """Names, families and seeds of generated scenarios; shared by every cell of a playbook."""
    out = []
    for i in range(count):
        family = GENERATED_FAMILIES[i % len(GENERATED_FAMILIES)]
        name = f"{family}-{i + 1:04d}"
        out.append((name, family, derive_seed(seed, name)))
    return tuple(out)


@dataclass(frozen=True)
class Plan:
    """Cells of one or more playbooks, possibly one shard of the whole."""

    playbooks: tuple[Playbook, ...]
    cells: tuple[Cell, ...]
    shard: Shard | None = None

    @property
    def test_count(self) -> int:
        """Scenarios over all cells."""
        return sum(c.scenario_count for c in self.cells)

    def select(self, shard: Shard) -> Plan:
        """The cells of one shard: whole cells, balanced by estimated cost (greedy LPT).

        Deterministic, so every shard job computes the same split; shards are
        disjoint and their union is the plan.
        """
        if self.shard is not None:
            raise UsageError("a sharded plan cannot be sharded again")
        loads = [(0.0, i) for i in range(shard.total)]
        owner: dict[str, int] = {}
        for cell in sorted(self.cells, key=lambda c: (-c.cost, c.id)):
            load, index = heapq.heappop(loads)
            owner[cell.id] = index
            heapq.heappush(loads, (load + cell.cost, index))
        mine = tuple(c for c in self.cells if owner[c.id] == shard.index - 1)
        return Plan(self.playbooks, mine, shard)


def _artifacts(playbook: Playbook) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for fmt in playbook.matrix.formats:
        if fmt == "gguf":
            out.extend(("gguf", q) for q in playbook.matrix.quantizations)
        else:
            out.append((fmt, STORED))
    return out


def build_plan(playbooks: Sequence[Playbook], shard: Shard | None = None) -> Plan:
    """Expand playbooks into cells; ids must be unique across playbooks."""
    cells: list[Cell] = []
    names: dict[str, str] = {}
    for playbook in playbooks:
        if playbook.name in names:
            raise UsageError(
                f"{playbook.path}: playbook name '{playbook.name}' is also used by {names[playbook.name]}"
            )
        names[playbook.name] = str(playbook.path)
        matrix = playbook.matrix
        for fmt, quant in _artifacts(playbook):
            for backend in matrix.backends:
                for modality in matrix.modalities:
                    explicit = tuple(s for s in playbook.scenarios if s.applies_to(modality))
                    generated = max(0, matrix.scenario_count - len(explicit))
                    cells.append(Cell(playbook, fmt, quant, backend, modality, explicit, generated))
    plan = Plan(tuple(playbooks), tuple(cells))
    return plan.select(shard) if shard else plan
