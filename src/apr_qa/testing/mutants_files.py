"""Mutants that damage files rather than weights: bytes, config, tokenizer, template.

Each function takes the copy already made (a checkpoint directory or a GGUF file)
and breaks it in place; the table in ``apr_qa.testing.mutants`` makes the copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apr_qa.errors import UsageError
from apr_qa.testing.mutants_io import WEIGHTS, read_config, rewrite_gguf, write_config

__all__ = [
    "BROKEN_CHAT_TEMPLATE",
    "TOKENIZER_FILES",
    "bad_magic",
    "break_chat_template",
    "config_bump",
    "drop_merges",
    "gguf_drop_merges",
    "gguf_wrong_pre",
    "hf_wrong_pre",
    "remove_tokenizer",
    "truncate",
    "truncate_weights",
]

# Keep this much of a truncated file: past the header, short of the last tensor.
TRUNCATE_FRACTION = 0.6

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)

# Renders without error but in a format the model never saw: other role markers,
# no end-of-turn token, no generation prompt.
BROKEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '### ' + message['role'] | capitalize + ': ' + message['content'] + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:' }}{% endif %}"
)

# GGUF pre-tokenizer -> the wrong one to put in its place.
# `llama-bpe` (runs of up to three digits) and `qwen2` (one digit at a time) differ
# only on digit runs, which a vocabulary without multi-digit tokens never shows; such
# a vocabulary gets `gpt-2`, which splits whitespace runs and newlines differently.
_WRONG_PRE = {"llama-bpe": "qwen2", "qwen2": "gpt-2"}
_WRONG_PRE_WITHOUT_DIGIT_RUNS = "gpt-2"


def truncate(path: Path) -> Path:
    """Cut a file to ``TRUNCATE_FRACTION`` of its length."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(int(size * TRUNCATE_FRACTION))
    return path


def truncate_weights(checkpoint: Path) -> Path:
    """Truncate a checkpoint's safetensors file."""
    truncate(checkpoint / WEIGHTS)
    return checkpoint


def bad_magic(path: Path) -> Path:
    """Overwrite a GGUF's magic with bytes no GGUF reader accepts."""
    with path.open("r+b") as f:
        f.write(b"GGLM")
    return path


def remove_tokenizer(checkpoint: Path) -> Path:
    """Delete every tokenizer file of a checkpoint."""
    removed = [n for n in TOKENIZER_FILES if (checkpoint / n).exists()]
    if "tokenizer.json" not in removed:
        raise UsageError(f"{checkpoint}: no tokenizer.json to remove")
    for name in removed:
        (checkpoint / name).unlink()
    return checkpoint


def _tokenizer_json(checkpoint: Path) -> tuple[Path, dict[str, Any]]:
    path = checkpoint / "tokenizer.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read tokenizer: {exc}") from None
    return path, doc


def drop_merges(checkpoint: Path) -> Path:
    """Empty the BPE merge list of tokenizer.json (vocabulary kept)."""
    path, doc = _tokenizer_json(checkpoint)
    model = doc.get("model") or {}
    if model.get("type") != "BPE" or not model.get("merges"):
        raise UsageError(f"{path}: not a BPE tokenizer with merges")
    model["merges"] = []
    # With ignore_merges, words found whole in the vocabulary would hide the damage.
    model["ignore_merges"] = False
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return checkpoint


def hf_wrong_pre(checkpoint: Path) -> Path:
    """Make tokenizer.json's split pattern take digits one by one (qwen2's) where the
    model was trained on runs of up to three (llama 3's); a vocabulary without a
    multi-digit token would not show that, so it gets GPT-2's pattern whole."""
    path, doc = _tokenizer_json(checkpoint)
    text = json.dumps(doc, ensure_ascii=False)
    runs = r"\p{N}{1,3}"
    pattern = _split_pattern(doc)
    if pattern is None or runs not in pattern:
        raise UsageError(f"{path}: no digit-run split pattern to change")
    vocab = (doc.get("model") or {}).get("vocab") or {}
    digit_runs = any(len(t) > 1 and t.isdigit() for t in vocab)
    wrong = pattern.replace(runs, r"\p{N}") if digit_runs else _GPT2_SPLIT
    text = text.replace(json.dumps(pattern)[1:-1], json.dumps(wrong)[1:-1])
    path.write_text(text, encoding="utf-8")
    return checkpoint


_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def _split_pattern(doc: dict[str, Any]) -> str | None:
    """The regex of tokenizer.json's first Split pre-tokenizer, if any."""
    pre = doc.get("pre_tokenizer") or {}
    for step in [pre, *(pre.get("pretokenizers") or [])]:
        regex = (step.get("pattern") or {}).get("Regex") if step.get("type") == "Split" else None
        if isinstance(regex, str):
            return regex
    return None


def break_chat_template(checkpoint: Path) -> Path:
    """Replace the chat template, wherever the checkpoint keeps it, with
    ``BROKEN_CHAT_TEMPLATE``."""
    replaced = False
    jinja = checkpoint / "chat_template.jinja"
    if jinja.exists():
        jinja.write_text(BROKEN_CHAT_TEMPLATE, encoding="utf-8")
        replaced = True
    config_path = checkpoint / "tokenizer_config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if "chat_template" in config:
            config["chat_template"] = BROKEN_CHAT_TEMPLATE
            config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
            replaced = True
    if not replaced:
        raise UsageError(f"{checkpoint}: has no chat template to break")
    return checkpoint


def config_bump(key: str, change: Callable[[int], int]) -> Callable[[Path], Path]:
    """A mutation that rewrites config.json's ``key`` so it no longer fits the tensors."""

    def mutate(checkpoint: Path) -> Path:
        config = read_config(checkpoint)
        if not isinstance(config.get(key), int):
            raise UsageError(f"{checkpoint / 'config.json'}: no integer {key}")
        config[key] = change(config[key])
        write_config(checkpoint, config)
        return checkpoint

    return mutate


def gguf_wrong_pre(src: Path, dst: Path) -> Path:
    """Copy a GGUF with the wrong ``tokenizer.ggml.pre`` (see ``_WRONG_PRE``)."""
    import gguf

    reader = gguf.GGUFReader(str(src))
    field = reader.get_field("tokenizer.ggml.pre")
    if field is None:
        raise UsageError(f"{src}: no tokenizer.ggml.pre")
    pre = str(field.contents())
    wrong = _WRONG_PRE.get(pre, "llama-bpe")
    tokens = reader.get_field("tokenizer.ggml.tokens")
    digit_runs = tokens is not None and any(
        len(t) > 1 and t.isdigit() for t in map(str, tokens.contents())
    )
    if wrong == "qwen2" and not digit_runs:
        wrong = _WRONG_PRE_WITHOUT_DIGIT_RUNS
    return rewrite_gguf(src, dst, set_keys={"tokenizer.ggml.pre": wrong})


def gguf_drop_merges(src: Path, dst: Path) -> Path:
    """Copy a GGUF without ``tokenizer.ggml.merges``."""
    return rewrite_gguf(src, dst, drop_keys=("tokenizer.ggml.merges",))
