"""What the parent and a worker say to each other: one frozen dataclass per message.

Messages travel as JSON lines, ``{"op": "<name>", ...fields}``; :func:`encode` and
:func:`decode` are the only places that know the wire form, so neither side ever
branches on an ``op`` string or guesses at a dict's keys. Logits travel as
base64 float32 bytes: a vocabulary-wide row in JSON numbers would be ten times
larger and lossy.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

from apr_qa.backends import Generation, Vocab

__all__ = [
    "Exit",
    "Failed",
    "FailureKind",
    "Generate",
    "Generated",
    "Hidden",
    "HiddenStates",
    "Load",
    "LoadWeights",
    "Loaded",
    "Logits",
    "Message",
    "Ping",
    "Pong",
    "ProtocolError",
    "Reply",
    "Request",
    "Score",
    "Tokenize",
    "Tokens",
    "decode",
    "decode_reply",
    "decode_request",
    "encode",
]


# -- requests (parent -> worker) ----------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Load one artifact in one runtime; answered by :class:`Loaded` or :class:`Failed`."""

    backend: str
    path: str
    device: str
    trust_remote_code: bool = False


@dataclass(frozen=True)
class Generate:
    """Complete a prompt (run) or answer messages (chat)."""

    prompt: str | None
    messages: tuple[Mapping[str, str], ...] | None
    max_tokens: int
    temperature: float
    seed: int
    min_tokens: int = 0
    """Generate at least this many tokens, end-of-generation suppressed until then
    (the profile's fixed-length runs); 0: stop where the model stops."""


@dataclass(frozen=True)
class Tokenize:
    """The ids the runtime feeds the model for ``text`` as a raw prompt."""

    text: str


@dataclass(frozen=True)
class Score:
    """Teacher-forced logits for ``token_ids``."""

    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class HiddenStates:
    """Every layer's output for ``token_ids`` (answered by :class:`Hidden`)."""

    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class LoadWeights:
    """Put another artifact's weights (a GGUF, a checkpoint of the same config) into
    the loaded transformers model; answered by :class:`Loaded` or :class:`Failed`."""

    path: str


@dataclass(frozen=True)
class Ping:
    """Are you alive and idle?"""


@dataclass(frozen=True)
class Exit:
    """Release the model and exit."""


# -- replies (worker -> parent) -----------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """The model loaded, in ``load_s`` seconds, with these tokenizer facts."""

    load_s: float
    vocab: Vocab


@dataclass(frozen=True)
class Generated:
    """One generation."""

    generation: Generation


@dataclass(frozen=True)
class Tokens:
    """Token ids."""

    ids: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class _Array:
    """A float32 array reply; equal when of the same type with equal values."""

    values: npt.NDArray[np.float32]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False
        assert isinstance(other, _Array)
        return bool(np.array_equal(self.values, other.values))

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class Logits(_Array):
    """A float32 ``[rows, vocab]`` matrix."""


@dataclass(frozen=True, eq=False)
class Hidden(_Array):
    """A float32 ``[layers + 1, tokens, hidden]`` array."""


FailureKind: TypeAlias = Literal["error", "context"]
"""``context``: the prompt does not fit the model's context window, so nothing was
asked (the cell skips the scenario); ``error``: anything else (evidence against the model)."""


@dataclass(frozen=True)
class Failed:
    """The request could not be honoured; ``error`` is one line (evidence, not a crash)."""

    error: str
    kind: FailureKind = "error"


@dataclass(frozen=True)
class Pong:
    """Alive and idle."""


Request: TypeAlias = Load | Generate | Tokenize | Score | HiddenStates | LoadWeights | Ping | Exit
Reply: TypeAlias = Loaded | Generated | Tokens | Logits | Hidden | Failed | Pong
Message: TypeAlias = Request | Reply

_BY_OP: dict[str, type[Any]] = {
    "load": Load,
    "generate": Generate,
    "tokenize": Tokenize,
    "score": Score,
    "hidden_states": HiddenStates,
    "load_weights": LoadWeights,
    "ping": Ping,
    "exit": Exit,
    "loaded": Loaded,
    "generated": Generated,
    "tokens": Tokens,
    "logits": Logits,
    "hidden": Hidden,
    "failed": Failed,
    "pong": Pong,
}
_OP_OF: dict[type[Any], str] = {cls: op for op, cls in _BY_OP.items()}


class ProtocolError(ValueError):
    """A line that is not a message of this protocol (a bug on one side, or a corrupt pipe)."""


def _fields(message: Message) -> dict[str, Any]:
    match message:
        case Loaded(load_s=load_s, vocab=vocab):
            return {"load_s": load_s, "vocab": dataclasses.asdict(vocab)}
        case Generated(generation=gen):
            return {"generation": dataclasses.asdict(gen)}
        case _Array(values=values):
            array = np.ascontiguousarray(values, dtype=np.float32)
            return {
                "shape": list(array.shape),
                "data": base64.b64encode(array.tobytes()).decode("ascii"),
            }
        case Generate(messages=messages):
            fields = dataclasses.asdict(message)
            fields["messages"] = None if messages is None else [dict(m) for m in messages]
            return fields
        case _:
            return dataclasses.asdict(message)


def encode(message: Message) -> bytes:
    """One JSON line (with its newline), UTF-8; lone surrogates survive as escapes."""
    payload = {"op": _OP_OF[type(message)], **_fields(message)}
    text = json.dumps(payload, ensure_ascii=False)
    return (text + "\n").encode("utf-8", "backslashreplace")


def _build(cls: type[Any], fields: dict[str, Any]) -> Message:
    if cls is Loaded:
        vocab = fields["vocab"]
        return Loaded(
            float(fields["load_s"]),
            Vocab(vocab["pad_token"], vocab["eos_token"], tuple(vocab["special_tokens"])),
        )
    if cls is Generated:
        gen = dict(fields["generation"])
        gen["token_ids"] = tuple(gen["token_ids"])
        return Generated(Generation(**gen))
    if cls in (Logits, Hidden):
        raw = base64.b64decode(fields["data"])
        values = np.frombuffer(raw, dtype=np.float32).reshape(fields["shape"]).copy()
        array: Message = cls(values)
        return array
    if cls is Generate:
        messages = fields.get("messages")
        fields["messages"] = None if messages is None else tuple(dict(m) for m in messages)
    if cls is Failed and fields.get("kind", "error") not in get_args(FailureKind):
        raise ValueError(f"unknown failure kind {fields['kind']!r}")
    if cls in (Tokens, Score, HiddenStates):
        name = "ids" if cls is Tokens else "token_ids"
        fields[name] = tuple(int(i) for i in fields[name])
    message: Message = cls(**fields)
    return message


def decode(line: bytes | str) -> Message:
    """The message on one line; :class:`ProtocolError` when it is not one."""
    try:
        payload = json.loads(line)
        cls = _BY_OP[payload.pop("op")]
        return _build(cls, payload)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        shown = line[:200] if isinstance(line, str) else line[:200].decode("utf-8", "replace")
        raise ProtocolError(f"not a worker message: {shown!r} ({exc})") from exc


_REQUESTS = (Load, Generate, Tokenize, Score, HiddenStates, LoadWeights, Ping, Exit)
_REPLIES = (Loaded, Generated, Tokens, Logits, Hidden, Failed, Pong)


def decode_request(line: bytes | str) -> Request:
    """A request (what a worker reads); :class:`ProtocolError` for anything else."""
    message = decode(line)
    if not isinstance(message, _REQUESTS):
        raise ProtocolError(f"a worker was sent a reply: {type(message).__name__}")
    return message


def decode_reply(line: bytes | str) -> Reply:
    """A reply (what the parent reads); :class:`ProtocolError` for anything else."""
    message = decode(line)
    if not isinstance(message, _REPLIES):
        raise ProtocolError(f"a worker answered with a request: {type(message).__name__}")
    return message
