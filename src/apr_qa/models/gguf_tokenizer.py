"""The tokenizer half of the reference GGUF converter.

The tokenizer is read the way transformers itself loads it (``AutoTokenizer``), not
only from ``tokenizer.json``: transformers 5 replaces the pre-tokenizer of some model
types (Qwen2) with its own, and the GGUF must tokenize like the model the user runs.
Which pre-tokenizer llama.cpp applies (``tokenizer.ggml.pre``) is decided from the
split regex; an unknown one is an error, because a wrong guess changes tokenization
silently, which is exactly the class of bug apr-qa exists to catch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apr_qa.errors import UsageError
from apr_qa.models.config import read_config_json

__all__ = ["BPE_PRE_TOKENIZERS", "TokenizerMetadata", "read_tokenizer"]

log = logging.getLogger(__name__)

# Split regexes as they appear in Hugging Face tokenizer.json files, mapped to the
# llama.cpp pre-tokenizer that implements the same split (llama-vocab.cpp).
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BPE_PRE_TOKENIZERS: Mapping[str, str] = {
    _LLAMA3_REGEX: "llama-bpe",
    _QWEN2_REGEX: "qwen2",
}
"""Split regex (from tokenizer.json) -> ``tokenizer.ggml.pre``. A bare ``ByteLevel``
pre-tokenizer with ``use_regex`` is GPT-2's split and maps to ``gpt-2``."""

# Normalizers llama.cpp does not apply but which leave byte-level BPE input as is for
# the text we care about (NFC only composes already-composed ASCII/Latin text).
_HARMLESS_NORMALIZERS = {None, "NFC"}

# gguf TokenType values (gguf.TokenType), kept here to avoid importing gguf at module load.
_NORMAL, _UNUSED, _CONTROL, _USER_DEFINED = 1, 5, 3, 4


@dataclass(frozen=True)
class TokenizerMetadata:
    """Everything the GGUF ``tokenizer.ggml.*`` keys need, already decided."""

    model: str
    pre: str | None
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    scores: list[float] | None
    special_ids: dict[str, int]
    add_bos: bool
    add_eos: bool
    add_space_prefix: bool | None
    chat_template: str | None

    def write(self, writer: Any) -> None:
        """Add the tokenizer keys to a ``gguf.GGUFWriter``."""
        writer.add_tokenizer_model(self.model)
        if self.pre is not None:
            writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        writer.add_token_types(self.token_types)
        if self.scores is not None:
            writer.add_token_scores(self.scores)
        if self.merges:
            writer.add_token_merges(self.merges)
        for kind, token_id in self.special_ids.items():
            getattr(writer, f"add_{kind}_token_id")(token_id)
        # Written even when false: llama.cpp's defaults differ per pre-tokenizer
        # (llama-bpe adds BOS by default), and the GGUF must do what HF does.
        writer.add_add_bos_token(self.add_bos)
        writer.add_add_eos_token(self.add_eos)
        if self.add_space_prefix is not None:
            writer.add_add_space_prefix(self.add_space_prefix)
        if self.chat_template:
            writer.add_chat_template(self.chat_template)


def read_tokenizer(
    src: Path, n_vocab: int, *, add_space_prefix: bool | None = None
) -> TokenizerMetadata:
    """Read the checkpoint's tokenizer in ``src`` into GGUF tokenizer metadata.

    Byte-level BPE (``tokenizer.json``) becomes ``gpt2`` with a decided ``pre``;
    a checkpoint whose tokenizer is not byte-level BPE but ships ``tokenizer.model``
    becomes SentencePiece (``llama``, :mod:`apr_qa.models.gguf_tokenizer_spm`), which
    needs the ``sentencepiece`` package. ``add_space_prefix`` overrides a SentencePiece
    model's own ``add_dummy_prefix`` (an architecture whose llama.cpp graph fixes it).
    """
    hf_tok = _load_hf_tokenizer(src)
    backend = _backend_json(hf_tok)
    if backend is not None and _is_byte_level_bpe(backend):
        return _byte_level_bpe(src, hf_tok, backend, n_vocab)
    if (src / "tokenizer.model").is_file():
        return _sentencepiece(src, hf_tok, n_vocab, add_space_prefix)
    kind = backend["model"].get("type") if backend else type(hf_tok).__name__
    raise UsageError(
        f"{src}: unsupported tokenizer ({kind}); supported: byte-level BPE tokenizer.json, "
        "or SentencePiece tokenizer.model"
    )


def _load_hf_tokenizer(src: Path) -> Any:
    if not (src / "tokenizer.json").is_file() and not (src / "tokenizer.model").is_file():
        raise UsageError(f"{src}: no tokenizer.json or tokenizer.model; the GGUF needs a tokenizer")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(src), trust_remote_code=False)
    except Exception as exc:  # transformers raises many unrelated types for bad files
        raise UsageError(f"{src}: cannot load the tokenizer: {exc}") from exc


def _backend_json(hf_tok: Any) -> dict[str, Any] | None:
    backend = getattr(hf_tok, "backend_tokenizer", None)
    if backend is None:
        return None
    loaded: dict[str, Any] = json.loads(backend.to_str())
    return loaded


def _is_byte_level_bpe(backend: Mapping[str, Any]) -> bool:
    if backend["model"].get("type") != "BPE":
        return False
    return any(p.get("type") == "ByteLevel" for p in _pre_tokenizer_steps(backend))


def _pre_tokenizer_steps(backend: Mapping[str, Any]) -> list[dict[str, Any]]:
    pre = backend.get("pre_tokenizer")
    if pre is None:
        return []
    if pre.get("type") == "Sequence":
        steps: list[dict[str, Any]] = pre["pretokenizers"]
        return steps
    return [pre]


def _decide_pre(src: Path, backend: Mapping[str, Any]) -> str:
    """Map the effective HF pre-tokenizer to the llama.cpp pre-tokenizer name."""
    normalizer = backend.get("normalizer")
    norm_type = normalizer.get("type") if normalizer else None
    if norm_type not in _HARMLESS_NORMALIZERS:
        raise UsageError(f"{src}: tokenizer normalizer {norm_type} has no llama.cpp equivalent")
    steps = _pre_tokenizer_steps(backend)
    types = [s.get("type") for s in steps]
    byte_level = steps[types.index("ByteLevel")]
    if byte_level.get("add_prefix_space"):
        raise UsageError(f"{src}: ByteLevel add_prefix_space=true has no llama.cpp equivalent")
    if types == ["ByteLevel"] and byte_level.get("use_regex", True):
        return "gpt-2"
    if types == ["Split", "ByteLevel"] and not byte_level.get("use_regex", True):
        split = steps[0]
        regex = split.get("pattern", {}).get("Regex")
        if split.get("behavior") == "Isolated" and not split.get("invert") and regex:
            pre = BPE_PRE_TOKENIZERS.get(regex)
            if pre is not None:
                return pre
        raise UsageError(
            f"{src}: unknown pre-tokenizer split {regex!r}; known: "
            + ", ".join(sorted(BPE_PRE_TOKENIZERS.values()))
            + ", gpt-2"
        )
    raise UsageError(f"{src}: unknown pre-tokenizer sequence {types}; no llama.cpp equivalent")


def _byte_level_bpe(
    src: Path, hf_tok: Any, backend: Mapping[str, Any], n_vocab: int
) -> TokenizerMetadata:
    pre = _decide_pre(src, backend)
    model = backend["model"]
    by_id: dict[int, tuple[str, int]] = {i: (t, _NORMAL) for t, i in model["vocab"].items()}
    for added in backend.get("added_tokens", []):
        kind = _CONTROL if added.get("special") else _USER_DEFINED
        by_id[int(added["id"])] = (added["content"], kind)
    tokens, types = _dense_vocab(src, by_id, n_vocab)
    add_bos, add_eos = _probe_special_tokens(src, hf_tok)
    return TokenizerMetadata(
        model="gpt2",
        pre=pre,
        tokens=tokens,
        token_types=types,
        merges=[_merge_text(m) for m in model.get("merges", [])],
        scores=None,
        special_ids=_special_ids(src, hf_tok, n_vocab),
        add_bos=add_bos,
        add_eos=add_eos,
        add_space_prefix=None,
        chat_template=_chat_template(hf_tok),
    )


def _dense_vocab(
    src: Path, by_id: Mapping[int, tuple[str, int]], n_vocab: int
) -> tuple[list[str], list[int]]:
    if by_id and max(by_id) >= n_vocab:
        raise UsageError(
            f"{src}: tokenizer has token id {max(by_id)} but config.json vocab_size is {n_vocab}"
        )
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        # Embedding rows beyond the tokenizer (vocab padded to a multiple) get
        # placeholder tokens, as llama.cpp's converter does.
        text, kind = by_id.get(i, (f"[PAD{i}]", _UNUSED))
        tokens.append(text)
        types.append(kind)
    return tokens, types


def _merge_text(merge: str | list[str]) -> str:
    if isinstance(merge, str):
        return merge
    # GGUF merges are "left right"; a literal space inside a part is shifted by 256,
    # the encoding gguf-py and llama.cpp agree on.
    return " ".join(part.replace(" ", chr(ord(" ") + 256)) for part in merge)


def _special_ids(src: Path, hf_tok: Any, n_vocab: int) -> dict[str, int]:
    config = read_config_json(src, missing_ok=True)
    ids: dict[str, int] = {}
    for kind, attr in (("bos", "bos"), ("eos", "eos"), ("pad", "pad"), ("unk", "unk")):
        token_id = getattr(hf_tok, f"{attr}_token_id", None)
        if token_id is None:
            token_id = config.get(f"{attr}_token_id")
        if isinstance(token_id, list):  # some configs list several eos ids
            token_id = token_id[0] if token_id else None
        if isinstance(token_id, int) and 0 <= token_id < n_vocab:
            ids[kind] = token_id
    return ids


def _probe_special_tokens(src: Path, hf_tok: Any) -> tuple[bool, bool]:
    """Ask the HF tokenizer whether it adds BOS/EOS, rather than guessing from files."""
    probe = "a"
    plain = list(hf_tok(probe, add_special_tokens=False)["input_ids"])
    full = list(hf_tok(probe, add_special_tokens=True)["input_ids"])
    start = next((i for i in range(len(full)) if full[i : i + len(plain)] == plain), None)
    if start is None:
        raise UsageError(f"{src}: the tokenizer's post-processor rewrites text; not supported")
    prefix, suffix = full[:start], full[start + len(plain) :]
    bos, eos = hf_tok.bos_token_id, hf_tok.eos_token_id
    if prefix not in ([], [bos]) or suffix not in ([], [eos]):
        raise UsageError(
            f"{src}: the tokenizer adds {prefix} before and {suffix} after the text; "
            "only a single BOS and/or EOS can be expressed in GGUF"
        )
    return bool(prefix), bool(suffix)


def _chat_template(hf_tok: Any) -> str | None:
    template = getattr(hf_tok, "chat_template", None)
    return template if isinstance(template, str) and template else None


def _sentencepiece(
    src: Path, hf_tok: Any, n_vocab: int, add_space_prefix: bool | None
) -> TokenizerMetadata:
    from apr_qa.models.gguf_tokenizer_spm import read_sentencepiece

    pieces, dummy_prefix = read_sentencepiece(src, n_vocab)
    add_bos, add_eos = _probe_special_tokens(src, hf_tok)
    return TokenizerMetadata(
        model="llama",
        pre="default",
        tokens=[text for text, _, _ in pieces],
        token_types=[kind for _, _, kind in pieces],
        merges=[],
        scores=[score for _, score, _ in pieces],
        special_ids=_special_ids(src, hf_tok, n_vocab),
        add_bos=add_bos,
        add_eos=add_eos,
        add_space_prefix=dummy_prefix if add_space_prefix is None else add_space_prefix,
        chat_template=_chat_template(hf_tok),
    )
