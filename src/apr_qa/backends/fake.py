"""A deterministic stand-in backend, for fast tests of the engine.

The "artifact" is a JSON file that scripts the model::

    {"answers": {"<prompt or last user message>": "<text>"},
     "default": "<text>" | null,        # null: echo the prompt back
     "fail_load": "<message>" | null,   # load() raises LoadError(message)
     "crash_on": "<substring>" | null,  # the process kills itself with SIGSEGV
     "hang_on": "<substring>" | null,   # generate() never returns
     "nondeterministic": true | false,  # each call's answer ends with the call's number
     "vocab": {"pad_token": ..., "eos_token": ..., "special_tokens": [...]}}

Token ids are the UTF-8 bytes of the text, and ``EOS_ID`` (256) ends an answer
that fits in ``max_tokens``, as a real model's end-of-generation token would.
With ``min_tokens``, EOS is suppressed and the answer repeats until that many
tokens came out, the way a real model goes on past its answer.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from apr_qa.backends import (
    Generation,
    LoadError,
    Vocab,
    check_device,
    check_request,
    timed_generation,
)
from apr_qa.errors import EnvironmentProblem, UsageError

__all__ = ["EOS_ID", "VOCAB_SIZE", "FakeBackend"]

EOS_ID = 256
"""The fake's end-of-generation id, after the 256 byte ids."""
VOCAB_SIZE = 257

_KEYS = frozenset(
    {
        "answers",
        "default",
        "fail_load",
        "crash_on",
        "hang_on",
        "vocab",
        "requires_remote_code",
        "nondeterministic",
    }
)
_DEFAULT_VOCAB = Vocab(pad_token="<pad>", eos_token="</s>", special_tokens=("<pad>", "</s>"))


class FakeBackend:
    """Answers from a JSON script; see the module docstring."""

    kind = "fake"

    def __init__(self) -> None:
        self._path: Path | None = None
        self._script: dict[str, Any] | None = None
        self._vocab = _DEFAULT_VOCAB
        self._calls = 0

    def load(self, path: Path, device: str, *, trust_remote_code: bool = False) -> None:
        """Read the script at ``path``; ``fail_load`` makes this raise ``LoadError``."""
        check_device(device)
        if device == "gpu":
            raise EnvironmentProblem(f"{path}: the fake backend has no GPU mode")
        try:
            script = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LoadError(f"{path}: not a readable fake-model script ({exc})") from exc
        if not isinstance(script, dict):
            raise UsageError(f"{path}: a fake-model script is a JSON object")
        unknown = sorted(set(script) - _KEYS)
        if unknown:
            raise UsageError(f"{path}: unknown fake-model keys: {', '.join(unknown)}")
        if script.get("fail_load"):
            raise LoadError(str(script["fail_load"]))
        if script.get("requires_remote_code") and not trust_remote_code:
            # Like a checkpoint whose architecture lives in its own Python files.
            raise LoadError(f"{path}: this model needs trust_remote_code, which was not granted")
        answers = script.get("answers") or {}
        if not isinstance(answers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in answers.items()
        ):
            raise UsageError(f"{path}: 'answers' maps prompts to strings")
        self._vocab = _vocab(path, script.get("vocab"))
        self._script = script
        self._path = path

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
        """The scripted answer to ``prompt`` or the last user message."""
        check_request(prompt, messages, max_tokens, temperature, min_tokens)
        script = self._loaded()
        started = time.perf_counter()
        texts = [prompt] if prompt is not None else [m["content"] for m in messages or ()]
        _misbehave(script, texts)
        key = prompt if prompt is not None else _last_user(messages or ())
        answer = script.get("answers", {}).get(key)
        if answer is None:
            default = script.get("default")
            answer = key if default is None else str(default)
        self._calls += 1
        if script.get("nondeterministic"):
            # A model whose greedy output depends on something besides the prompt
            # (uninitialized memory, a racy kernel): the same question, another answer.
            answer = f"{answer} ({self._calls})"
        prompt_ids = [b for t in texts for b in t.encode()]
        ids = list(answer.encode())
        floor = min(min_tokens, max_tokens)
        while len(ids) < floor:
            # EOS suppressed: the model goes on (a space, then the answer again).
            ids.extend(b" " + answer.encode())
        reason = "length"
        if len(ids) < max_tokens:
            ids.append(EOS_ID)
            reason = "stop"
        ids = ids[:max_tokens]
        text = bytes(t for t in ids if t != EOS_ID).decode("utf-8", errors="replace")
        first = time.perf_counter() if ids else None
        return timed_generation(
            text=text,
            token_ids=ids,
            prompt_tokens=len(prompt_ids),
            started=started,
            first_token_at=first,
            finished=time.perf_counter(),
            finish_reason=reason,
        )

    def tokenize(self, text: str) -> list[int]:
        """The UTF-8 bytes of ``text``."""
        self._loaded()
        return list(text.encode())

    def score(self, token_ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Logits that predict, at each position, the byte after the current one."""
        self._loaded()
        ids = [int(t) for t in token_ids]
        if any(not 0 <= t < VOCAB_SIZE for t in ids):
            raise UsageError(f"{self._path}: a token id is outside 0..{VOCAB_SIZE - 1}")
        logits = np.zeros((len(ids), VOCAB_SIZE), dtype=np.float32)
        for row, t in enumerate(ids):
            logits[row, (t + 1) % VOCAB_SIZE] = 1.0
        return logits

    def hidden_states(self, token_ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Two "layers" of width 4: each position's id, then its bits, as floats."""
        logits = self.score(token_ids)  # validates the ids
        ids = np.argmax(logits, axis=1).astype(np.float32) if len(logits) else np.zeros(0)
        states = np.zeros((2, len(ids), 4), dtype=np.float32)
        states[0, :, 0] = ids
        for bit in range(4):
            states[1, :, bit] = (ids.astype(np.int64) >> bit) & 1
        return states

    def vocab(self) -> Vocab:
        """The script's ``vocab``, or a plain default."""
        self._loaded()
        return self._vocab

    def close(self) -> None:
        """Forget the script."""
        self._script = None

    def _loaded(self) -> dict[str, Any]:
        if self._script is None:
            raise UsageError("the fake backend is not loaded")
        return self._script


def _misbehave(script: Mapping[str, Any], texts: Sequence[str]) -> None:
    crash_on, hang_on = script.get("crash_on"), script.get("hang_on")
    if crash_on and any(crash_on in t for t in texts):
        os.kill(os.getpid(), signal.SIGSEGV)
    if hang_on and any(hang_on in t for t in texts):
        while True:
            time.sleep(3600)


def _last_user(messages: Sequence[Mapping[str, str]]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return messages[-1]["content"]


def _vocab(path: Path, raw: Any) -> Vocab:
    if raw is None:
        return _DEFAULT_VOCAB
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: 'vocab' is an object")
    special = raw.get("special_tokens", [])
    if not isinstance(special, list) or not all(isinstance(s, str) for s in special):
        raise UsageError(f"{path}: 'vocab.special_tokens' is a list of strings")
    return Vocab(
        pad_token=raw.get("pad_token"),
        eos_token=raw.get("eos_token"),
        special_tokens=tuple(special),
    )
