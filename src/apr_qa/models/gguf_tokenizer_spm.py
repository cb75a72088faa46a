"""SentencePiece vocabularies for the reference GGUF converter (``tokenizer.ggml.model = llama``).

Gemma, Gemma 2, Llama 2 and Phi-3 ship a SentencePiece ``tokenizer.model``; llama.cpp
tokenizes them with its own SentencePiece implementation from the pieces, scores and
types written here:

- pieces, scores and types come from the model file itself (its protobuf), so a
  user-defined piece is ``USER_DEFINED`` (llama.cpp matches it whole, as
  SentencePiece does) even when no json lists it; its ``▁`` are written as spaces,
  because llama.cpp matches user-defined tokens in the raw text before it escapes
  spaces (llama.cpp's converter does the same for the ones it knows);
- added tokens from ``tokenizer_config.json``'s ``added_tokens_decoder`` and then
  ``tokenizer.json``'s ``added_tokens`` (transformers 5 writes only the latter)
  override their id: special ones ``CONTROL``, others ``USER_DEFINED``, score
  -1000, as llama.cpp's Phi-3 converter does;
- rows of the embedding beyond the tokenizer are ``[PAD<id>]``, ``UNUSED``, score
  -10000, as llama.cpp's converter pads;
- ``tokenizer.ggml.add_space_prefix`` is the model's ``add_dummy_prefix`` unless the
  architecture forces it (llama.cpp's gemma2 converter writes false).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from apr_qa.errors import EnvironmentProblem, UsageError

__all__ = ["PAD_SCORE", "SpmPiece", "read_sentencepiece"]

# gguf.TokenType values, which are SentencePiece's own ModelProto.SentencePiece.Type
# numbers (NORMAL 1 .. BYTE 6); not imported, to keep gguf off the module's load path.
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6
_SPM_TYPES = {_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE}
ADDED_SCORE = -1000.0
PAD_SCORE = -10000.0
"""Score of a padding row (an embedding row no piece or added token names)."""
_SPACE = "\u2581"  # SentencePiece's visible space, "▁"

SpmPiece = tuple[str, float, int]
"""One vocabulary entry: text, score, gguf token type."""


def read_sentencepiece(src: Path, n_vocab: int) -> tuple[list[SpmPiece], bool]:
    """The ``n_vocab`` entries of ``src``'s SentencePiece vocabulary, and the model's
    ``add_dummy_prefix``. Raises UsageError for a model llama.cpp would tokenize
    differently (a normalizer that rewrites text), EnvironmentProblem without the
    ``sentencepiece`` package."""
    model_file = src / "tokenizer.model"
    proto = _load_proto(model_file)
    _refuse_rewriting_normalizer(model_file)
    by_id: dict[int, SpmPiece] = {}
    for i, piece in enumerate(proto.pieces):
        kind = int(piece.type) if int(piece.type) in _SPM_TYPES else _NORMAL
        text = piece.piece
        if kind == _USER_DEFINED:
            text = text.replace(_SPACE, " ")
        by_id[i] = (text, float(piece.score), kind)
    for token_id, text, special in _added_tokens(src):
        by_id[token_id] = (text, ADDED_SCORE, _CONTROL if special else _USER_DEFINED)
    if by_id and max(by_id) >= n_vocab:
        raise UsageError(
            f"{src}: tokenizer has token id {max(by_id)} but config.json vocab_size is {n_vocab}"
        )
    pieces = [by_id.get(i, (f"[PAD{i}]", PAD_SCORE, _UNUSED)) for i in range(n_vocab)]
    return pieces, bool(proto.normalizer_spec.add_dummy_prefix)


def _load_proto(model_file: Path) -> Any:
    if importlib.util.find_spec("sentencepiece") is None:
        raise EnvironmentProblem(
            f"{model_file}: converting a SentencePiece tokenizer needs the "
            "'sentencepiece' package (pip install sentencepiece)"
        )
    model_pb2 = importlib.import_module("sentencepiece.sentencepiece_model_pb2")
    proto = model_pb2.ModelProto()
    try:
        proto.ParseFromString(model_file.read_bytes())
    except Exception as exc:  # protobuf's DecodeError, or an OSError reading
        raise UsageError(f"{model_file}: not a SentencePiece model: {exc}") from None
    if not proto.pieces:
        raise UsageError(f"{model_file}: not a SentencePiece model (no pieces)")
    return proto


def _refuse_rewriting_normalizer(model_file: Path) -> None:
    # llama.cpp's SentencePiece tokenizer has no normalizer: a model that rewrites
    # text (the trainer's defaults nmt_nfkc and remove_extra_whitespaces turn newlines
    # into spaces and collapse runs) would tokenize differently there.
    processor = importlib.import_module("sentencepiece").SentencePieceProcessor(
        model_file=str(model_file)
    )
    probe = "x  y\n\tz"
    if processor.decode(processor.encode(probe)) != probe:
        raise UsageError(
            f"{model_file}: the SentencePiece normalizer rewrites text (whitespace, "
            "newlines); llama.cpp does not normalize, so tokenization would differ"
        )


def _added_tokens(src: Path) -> Iterator[tuple[int, str, bool]]:
    """(id, text, special) of every added token, tokenizer_config.json's first."""
    config = _json(src / "tokenizer_config.json")
    decoder = config.get("added_tokens_decoder")
    if isinstance(decoder, Mapping):
        for key, data in decoder.items():
            if isinstance(data, Mapping) and isinstance(data.get("content"), str):
                yield _token_id(src, key), data["content"], bool(data.get("special"))
    added = _json(src / "tokenizer.json").get("added_tokens")
    for data in added if isinstance(added, list) else []:
        if isinstance(data, Mapping) and isinstance(data.get("content"), str):
            yield _token_id(src, data.get("id")), data["content"], bool(data.get("special"))


def _token_id(src: Path, value: Any) -> int:
    try:
        token_id = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{src}: added token id {value!r} is not an integer") from None
    if token_id < 0:
        raise UsageError(f"{src}: added token id {token_id} is negative")
    return token_id


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: unreadable: {exc}") from None
    return loaded if isinstance(loaded, dict) else {}
