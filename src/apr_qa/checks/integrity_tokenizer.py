"""G0-INTEGRITY-004: the tokenizer is there and loads.

A safetensors checkpoint needs ``tokenizer.json`` (loaded with the ``tokenizers``
library, whose vocabulary must fit the embedding rows) or ``tokenizer.model``,
and a ``tokenizer_config.json`` that is a JSON object. A GGUF file needs
``tokenizer.ggml.model`` and a non-empty token list, and for byte-level BPE
(``gpt2``) non-empty merges and a ``tokenizer.ggml.pre``: without the right
pre-tokenizer llama.cpp splits text differently and answers change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from apr_qa.checks.finding import Finding, Ledger

__all__ = ["check_gguf_tokenizer", "check_hf_tokenizer"]

GATE = "G0-INTEGRITY-004"

# tokenizer.ggml.* arrays that, when present, give one entry per token.
_PER_TOKEN = ("tokenizer.ggml.scores", "tokenizer.ggml.token_type")


def check_hf_tokenizer(directory: Path, embedding_rows: int | None) -> Finding:
    """Tokenizer files of a safetensors checkpoint directory."""
    led = Ledger(GATE)
    details: dict[str, object] = {"directory": str(directory)}
    tok_json, tok_model = directory / "tokenizer.json", directory / "tokenizer.model"
    if tok_json.is_file():
        details["vocab_size"] = _load_tokenizer_json(tok_json, embedding_rows, led)
    elif tok_model.is_file():
        # No SentencePiece loader is a dependency: the file is only checked non-empty.
        size = tok_model.stat().st_size
        led.check(size > 0, "tokenizer.model", f"{tok_model} is empty")
    else:
        led.fail(f"no tokenizer.json or tokenizer.model in {directory}")
    _load_tokenizer_config(directory / "tokenizer_config.json", led)
    return led.finding(
        passed=f"tokenizer files in {directory} present and loadable",
        skipped="",  # unreachable: every path above compares or fails
        details=details,
    )


def _load_tokenizer_json(path: Path, embedding_rows: int | None, led: Ledger) -> int | None:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    # The tokenizers library raises its own and plain exceptions for bad files.
    except Exception as e:
        led.fail(f"{path} does not load: {type(e).__name__}: {e}".splitlines()[0])
        return None
    vocab = int(tokenizer.get_vocab_size(with_added_tokens=True))
    led.check(vocab > 0, "tokenizer vocab", f"{path} has an empty vocabulary")
    if embedding_rows is not None:
        led.check(
            vocab <= embedding_rows,
            "tokenizer vocab vs embedding",
            f"{path} has {vocab} tokens but the embedding has only {embedding_rows} rows",
        )
    return vocab


def _load_tokenizer_config(path: Path, led: Ledger) -> None:
    if not path.is_file():
        led.fail(f"missing {path.name} in {path.parent}")
        return
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        led.fail(f"{path} is not valid JSON ({e})")
        return
    led.check(isinstance(doc, dict), path.name, f"{path} is not a JSON object")


def check_gguf_tokenizer(metadata: Mapping[str, object]) -> Finding:
    """The ``tokenizer.ggml.*`` keys of a GGUF file."""
    led = Ledger(GATE)
    model = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    n_tokens = len(tokens) if isinstance(tokens, list) else 0
    if not isinstance(model, str) or model in ("", "none"):
        led.fail(f"GGUF tokenizer.ggml.model is {model!r}: the file carries no tokenizer")
    led.check(n_tokens > 0, "tokens", "GGUF tokenizer.ggml.tokens is missing or empty")
    for key in _PER_TOKEN:
        values = metadata.get(key)
        if values is not None and n_tokens:
            count = len(values) if isinstance(values, list) else None
            led.check(
                count == n_tokens,
                key,
                f"GGUF {key} has {count} entries for {n_tokens} tokens",
            )
    if model == "gpt2":
        merges = metadata.get("tokenizer.ggml.merges")
        led.check(
            isinstance(merges, list) and len(merges) > 0,
            "merges",
            "GGUF BPE tokenizer (gpt2) has no tokenizer.ggml.merges",
        )
        pre = metadata.get("tokenizer.ggml.pre")
        led.check(
            isinstance(pre, str) and pre != "",
            "pre",
            "GGUF BPE tokenizer (gpt2) has no tokenizer.ggml.pre: llama.cpp would guess "
            "the pre-tokenizer",
        )
    for key, value in sorted(metadata.items()):
        if key.startswith("tokenizer.ggml.") and key.endswith("_token_id") and n_tokens:
            led.check(
                isinstance(value, int) and 0 <= value < n_tokens,
                key,
                f"GGUF {key}={value!r} is outside the {n_tokens} tokens",
            )
    return led.finding(
        passed=f"GGUF tokenizer {model} with {n_tokens} tokens is complete",
        skipped="",  # unreachable: the token list is always compared
        details={"model": model if isinstance(model, str) else None, "tokens": n_tokens},
    )
