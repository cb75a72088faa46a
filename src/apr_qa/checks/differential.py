"""What the differential checks share: which artifact pairs to compare, the
playbook's ``differential_tests`` settings, and a runtime in a worker process.

A differential check compares the model in one format with the same model in
another: the safetensors checkpoint (the reference, as its publisher trained it)
with each GGUF file. The pairs are every safetensors artifact of the model with
every GGUF artifact, counting the files ``differential_tests.compare_with``
names beside the ones the test matrix loads (a GGUF checked against the
checkpoint it was converted from, without running the checkpoint's cells).

Runtimes run in worker processes (:mod:`apr_qa.execute.client`), as the cells'
do: llama.cpp dying on a broken file is evidence, not the end of the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from apr_qa.checks import Artifact

if TYPE_CHECKING:
    from apr_qa.backends import Generation
    from apr_qa.execute.client import WorkerClient
    from apr_qa.playbook.model import Playbook

__all__ = [
    "Pair",
    "Runtime",
    "RuntimeUnavailable",
    "Switch",
    "pairs",
    "playbook_prompts",
    "quantization_of",
    "switch",
]

SECTION = "differential_tests"
LOAD_TIMEOUT_S = 300.0
CALL_TIMEOUT_S = 120.0
MAX_PROMPTS = 8
"""Playbook prompts a differential check uses at most (the first ones, in order)."""


@dataclass(frozen=True)
class Pair:
    """One safetensors checkpoint and one GGUF file of the same model."""

    reference: Path
    gguf: Path
    quantization: str
    """The GGUF's quantization as the matrix names it (``f32``, ``q4_k_m``)."""


@dataclass(frozen=True)
class Switch:
    """One ``differential_tests`` entry, normalized.

    ``gates`` is None when the playbook did not list them (every gate of the
    family runs); ``tolerance`` maps a quantization or stored type to a ceiling,
    ``"*"`` holding a plain number (which applies to unquantized pairs only).
    """

    enabled: bool
    gates: tuple[str, ...] | None
    tolerance: Mapping[str, float]
    options: Mapping[str, Any]

    def runs(self, gate: str) -> bool:
        """Whether this playbook asks for ``gate``."""
        return self.enabled and (self.gates is None or gate in self.gates)


def switch(playbook: Playbook, name: str) -> Switch:
    """The ``differential_tests.<name>`` entry; on by default (no section, no entry)."""
    entry: Mapping[str, Any] = playbook.sections.get(SECTION, {}).get(name, {})
    enabled = entry.get("enabled", True)
    gates = entry.get("gates")
    raw = entry.get("tolerance")
    tolerance: dict[str, float] = {}
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        tolerance["*"] = float(raw)
    elif isinstance(raw, Mapping):
        tolerance = {str(k).lower(): float(v) for k, v in raw.items()}
    return Switch(
        enabled=enabled is True or str(enabled).lower() == "true",
        gates=tuple(str(g) for g in gates) if gates is not None else None,
        tolerance=tolerance,
        options=entry,
    )


def _compare_with(playbook: Playbook) -> list[Path]:
    listed = playbook.sections.get(SECTION, {}).get("compare_with", ())
    base = playbook.path.parent
    return [p if p.is_absolute() else base / p for p in (Path(str(x)) for x in listed)]


def pairs(playbook: Playbook, artifacts: Sequence[Artifact]) -> list[Pair]:
    """Every (safetensors, GGUF) pair among the model's artifacts and ``compare_with``."""
    references: list[Path] = []
    ggufs: list[tuple[Path, str]] = []
    for artifact in artifacts:
        if artifact.ref.format == "safetensors":
            references.append(artifact.path)
        elif artifact.ref.format == "gguf":
            ggufs.append((artifact.path, artifact.ref.quantization or "auto"))
    for path in _compare_with(playbook):
        if path.suffix.lower() == ".gguf":
            ggufs.append((path, quantization_of(path)))
        else:
            references.append(path)
    return [
        Pair(ref, gguf, quantization_of(gguf) if quant == "auto" else quant)
        for ref in dict.fromkeys(references)
        for gguf, quant in dict.fromkeys(ggufs)
    ]


def quantization_of(path: Path) -> str:
    """A GGUF's quantization from its header; ``unknown`` when it cannot be read."""
    from apr_qa.errors import UsageError
    from apr_qa.models.readers import open_model

    try:
        with open_model(path) as reader:
            return reader.quantization
    except UsageError:
        return "unknown"


def playbook_prompts(playbook: Playbook, extra: Sequence[str] = ()) -> list[str]:
    """The texts the playbook asks its model, first ``extra``, without repeats.

    Raw prompts, then the user turns of conversations, then the G2 probe; at most
    :data:`MAX_PROMPTS`.
    """
    texts: list[str] = [t for t in extra if t]
    for scenario in playbook.scenarios:
        if scenario.prompt:
            texts.append(scenario.prompt)
    for scenario in playbook.scenarios:
        for message in scenario.messages or ():
            if message.get("role") == "user" and message.get("content"):
                texts.append(message["content"])
    texts.extend(playbook.gates.g2_probe)
    return list(dict.fromkeys(texts))[:MAX_PROMPTS]


class RuntimeUnavailable(Exception):
    """The artifact did not load, or its worker died or hung (the reason is the message)."""


class Runtime:
    """One artifact loaded in its runtime, in a worker process of its own."""

    def __init__(self, path: Path, fmt: str, *, trust_remote_code: bool = False) -> None:
        from apr_qa.execute.client import WorkerClient
        from apr_qa.execute.messages import Failed, Load, Loaded
        from apr_qa.execute.warm import BACKEND_OF_FORMAT

        self.path = path
        kind = BACKEND_OF_FORMAT[fmt]
        self._worker: WorkerClient = WorkerClient()
        reply = self._ask(Load(kind, str(path), "cpu", trust_remote_code), LOAD_TIMEOUT_S)
        if not isinstance(reply, Loaded):
            error = reply.error if isinstance(reply, Failed) else type(reply).__name__
            self.close()
            raise RuntimeUnavailable(f"{path.name} does not load in {kind}: {error}")

    def _ask(self, request: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        from apr_qa.execute.client import WorkerDied, WorkerTimeout

        try:
            return self._worker.request(request, timeout_s).reply
        except (WorkerDied, WorkerTimeout) as exc:
            self.close()
            raise RuntimeUnavailable(f"{self.path.name}: {exc}") from None

    def _expect(self, request: Any, reply_type: type) -> Any:
        from apr_qa.execute.messages import Failed

        reply = self._ask(request)
        if isinstance(reply, Failed):
            raise RuntimeUnavailable(f"{self.path.name}: {reply.error}")
        if not isinstance(reply, reply_type):
            raise RuntimeUnavailable(f"{self.path.name}: unexpected {type(reply).__name__}")
        return reply

    def tokenize(self, text: str) -> list[int]:
        """The ids the runtime feeds its model for ``text`` as a raw prompt."""
        from apr_qa.execute.messages import Tokenize, Tokens

        return list(self._expect(Tokenize(text), Tokens).ids)

    def score(self, ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Teacher-forced logits ``[len(ids), vocab]``."""
        from apr_qa.execute.messages import Logits, Score

        values: npt.NDArray[np.float32] = self._expect(Score(tuple(ids)), Logits).values
        return values

    def hidden_states(self, ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Every layer's output ``[layers + 1, len(ids), hidden]`` (transformers only)."""
        from apr_qa.execute.messages import Hidden, HiddenStates

        values: npt.NDArray[np.float32] = self._expect(HiddenStates(tuple(ids)), Hidden).values
        return values

    def load_weights(self, path: Path) -> None:
        """Put another artifact's weights into the loaded transformers model."""
        from apr_qa.execute.messages import Loaded, LoadWeights

        self._expect(LoadWeights(str(path)), Loaded)

    def generate(self, prompt: str, max_tokens: int) -> Generation:
        """Greedy completion of a raw prompt."""
        from apr_qa.execute.messages import Generate, Generated

        request = Generate(prompt, None, max_tokens, 0.0, 0)
        generation: Generation = self._expect(request, Generated).generation
        return generation

    def close(self) -> None:
        """Stop the worker."""
        self._worker.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
