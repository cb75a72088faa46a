"""Inference backends: one Protocol, three implementations, chosen by a plain mapping.

A backend loads one model artifact once and then answers many requests: raw
completion (``prompt``) or chat (``messages``), teacher-forced logits (``score``)
and tokenization. Implementations are imported only when created, so importing
this package costs nothing: ``transformers`` (safetensors) and ``llama_cpp`` (GGUF)
pull in torch and llama.cpp, ``fake`` is a deterministic stand-in for engine tests.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from apr_qa.errors import AprQaError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "BACKEND_KINDS",
    "DEVICES",
    "Backend",
    "ContextOverflow",
    "Generation",
    "LoadError",
    "Unsupported",
    "Vocab",
    "backend_for_format",
    "check_device",
    "check_request",
    "create_backend",
    "timed_generation",
]

DEVICES: tuple[str, ...] = ("cpu", "gpu")
"""Devices a backend loads onto."""

# kind -> "module:class"; a closed set, so a mapping rather than a registry.
_IMPLEMENTATIONS: Mapping[str, str] = {
    "transformers": "apr_qa.backends.transformers_backend:TransformersBackend",
    "llama_cpp": "apr_qa.backends.llama_cpp_backend:LlamaCppBackend",
    "fake": "apr_qa.backends.fake:FakeBackend",
}
BACKEND_KINDS: tuple[str, ...] = tuple(_IMPLEMENTATIONS)
"""Every backend kind ``create_backend`` accepts."""

_FORMAT_BACKENDS: Mapping[str, str] = {"safetensors": "transformers", "gguf": "llama_cpp"}


class LoadError(AprQaError):
    """The artifact cannot be loaded by the runtime; the message is one line naming it.

    This is evidence about the model (gate G1), not bad input: the engine records it.
    """


class Unsupported(AprQaError):
    """The runtime cannot answer this kind of request (llama.cpp has no per-layer
    hidden states); a check that needs it is skipped, not failed."""


class ContextOverflow(UsageError):
    """The prompt (or the ids to score) does not fit in the model's context window.

    Not a model failure: the question could not be asked. The engine records a
    scenario refused this way as skipped, with this message as the reason.
    """

    def __init__(
        self, path: Path | None, tokens: int, context: int, what: str = "the prompt"
    ) -> None:
        self.tokens = tokens
        self.context = context
        self.detail = f"{what} of {tokens} tokens does not fit the context of {context}"
        """The message without the artifact's path (the cell already names it)."""
        super().__init__(f"{path}: {self.detail}")


@dataclass(frozen=True)
class Generation:
    """What one generate call produced and how long it took."""

    text: str
    """Only the newly generated text: never the prompt, never a banner; special tokens
    (EOS, end of turn) are not rendered."""
    token_ids: tuple[int, ...]
    """The generated ids, including the stop token when generation stopped on one."""
    prompt_tokens: int
    ttft_s: float
    """Seconds from the call to the first generated token (prompt processing included)."""
    duration_s: float
    """Seconds for the whole call."""
    tok_per_s: float
    """Decode rate after the first token; 0.0 when fewer than two tokens came out."""
    finish_reason: str
    """``stop`` (an end-of-generation token) or ``length`` (``max_tokens`` reached)."""


@dataclass(frozen=True)
class Vocab:
    """What the garbage oracle needs to know about a model's tokenizer."""

    pad_token: str | None
    eos_token: str | None
    special_tokens: tuple[str, ...]


class Backend(Protocol):
    """One loaded model in one runtime. ``load`` once, then any number of calls."""

    kind: str

    def load(self, path: Path, device: str, *, trust_remote_code: bool = False) -> None:
        """Load the artifact at ``path`` onto ``device`` (``cpu`` or ``gpu``).

        Raises ``LoadError`` when the runtime cannot load it.
        """
        ...

    def generate(
        self,
        *,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, str]] | None = None,
        max_tokens: int,
        temperature: float,
        seed: int,
        min_tokens: int = 0,
    ) -> Generation:
        """Complete ``prompt`` (run) or answer ``messages`` through the model's chat
        template (chat). Greedy at temperature 0, else seeded sampling.

        ``min_tokens``: generate at least this many tokens (at most ``max_tokens``,
        and at most what the context holds); every end-of-generation token is
        suppressed until then. A fixed-length benchmark asks ``min_tokens =
        max_tokens``; 0 stops at the model's own end."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """The ids the runtime feeds the model for ``text`` as a raw prompt (with BOS
        when the model adds one; special tokens written in the text are parsed)."""
        ...

    def score(self, token_ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Teacher-forced logits, float32 ``[len(token_ids), vocab]``."""
        ...

    def hidden_states(self, token_ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Every layer's output for ``token_ids``, float32 ``[layers + 1, len, hidden]``
        (the embeddings first). Raises ``Unsupported`` where the runtime exposes none."""
        ...

    def vocab(self) -> Vocab:
        """The tokenizer facts the garbage oracle uses."""
        ...

    def close(self) -> None:
        """Release the model; the backend cannot be used afterwards."""
        ...


def create_backend(kind: str) -> Backend:
    """A new, unloaded backend of ``kind`` (one of ``BACKEND_KINDS``)."""
    target = _IMPLEMENTATIONS.get(kind)
    if target is None:
        raise UsageError(f"unknown backend {kind!r}; expected one of: {', '.join(BACKEND_KINDS)}")
    module_name, class_name = target.split(":")
    cls: Any = getattr(importlib.import_module(module_name), class_name)
    backend: Backend = cls()
    return backend


def backend_for_format(fmt: str) -> str:
    """The backend kind that runs artifacts of format ``fmt`` (``safetensors``, ``gguf``)."""
    kind = _FORMAT_BACKENDS.get(fmt)
    if kind is None:
        raise UsageError(
            f"no backend runs format {fmt!r}; expected one of: {', '.join(_FORMAT_BACKENDS)}"
        )
    return kind


def check_request(
    prompt: str | None,
    messages: Sequence[Mapping[str, str]] | None,
    max_tokens: int,
    temperature: float,
    min_tokens: int = 0,
) -> None:
    """Reject a generate request that no backend could honour."""
    if (prompt is None) == (messages is None):
        raise UsageError("generate takes exactly one of prompt or messages")
    if messages is not None:
        if not messages:
            raise UsageError("chat messages are empty")
        for m in messages:
            if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise UsageError(f"a chat message needs string role and content: {dict(m)!r}")
    if max_tokens < 0:
        raise UsageError(f"max_tokens must be >= 0, got {max_tokens}")
    if min_tokens < 0:
        raise UsageError(f"min_tokens must be >= 0, got {min_tokens}")
    if temperature < 0:
        raise UsageError(f"temperature must be >= 0, got {temperature}")


def check_device(device: str) -> None:
    """Reject a device name that is not one of ``DEVICES``."""
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; expected one of: {', '.join(DEVICES)}")


def timed_generation(
    *,
    text: str,
    token_ids: Sequence[int],
    prompt_tokens: int,
    started: float,
    first_token_at: float | None,
    finished: float,
    finish_reason: str,
) -> Generation:
    """A ``Generation`` from ``time.perf_counter()`` readings taken around the call."""
    n = len(token_ids)
    ttft = (first_token_at - started) if first_token_at is not None else 0.0
    decode_s = finished - first_token_at if first_token_at is not None else 0.0
    rate = (n - 1) / decode_s if n >= 2 and decode_s > 0 else 0.0
    return Generation(
        text=text,
        token_ids=tuple(int(t) for t in token_ids),
        prompt_tokens=prompt_tokens,
        ttft_s=ttft,
        duration_s=finished - started,
        tok_per_s=rate,
        finish_reason=finish_reason,
    )
