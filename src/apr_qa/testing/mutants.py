"""The mutant corpus: broken copies of the fixture models, each with the gates that
must falsify it.

``MUTANTS`` is the contract for every gate: a gate listed against a mutant must
falsify that mutant, and must corroborate the clean fixture it came from. The
``effect`` says how tests/models/test_mutants.py shows the defect is real:

- ``load_fails``: transformers (safetensors) or llama.cpp (GGUF) refuses to load it;
- ``wrong_answers``: it loads and answers prompts.json wrongly under greedy decoding;
- ``nonfinite_tensor`` / ``zero_tensor``: a tensor read back holds NaN/Inf, or only zeros;
- ``shape_mismatch``: the tensors disagree with what config.json implies;
- ``tokenizer``: the runtime splits text differently from the clean tokenizer;
- ``pad_flood``: greedy decoding emits nothing but the PAD token;
- ``quant_error``: dequantized weights are far outside the quantization's tolerance.

``build_mutant(name, fixture_dir, out_dir)`` writes the copy into ``out_dir`` (never
into the fixture) and returns the artifact: a checkpoint directory or a ``.gguf``.
docs/mutants.md is this table in prose; a test keeps the two equal.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from apr_qa.errors import UsageError
from apr_qa.models.architectures import (
    ATTN_OUT,
    FFN_DOWN,
    GEMMA2_ATTN_POST_NORM,
    architecture,
)
from apr_qa.testing import mutants_files as files
from apr_qa.testing import mutants_weights as weights
from apr_qa.testing.mutants_io import copy_checkpoint, fixture_gguf, read_config

__all__ = ["EFFECTS", "MUTANTS", "Effect", "Mutant", "applies", "build_mutant"]

Effect = Literal[
    "load_fails",
    "wrong_answers",
    "nonfinite_tensor",
    "zero_tensor",
    "shape_mismatch",
    "tokenizer",
    "pad_flood",
    "quant_error",
]
EFFECTS: tuple[str, ...] = Effect.__args__  # type: ignore[attr-defined]

Builder = Callable[[Path, Path], Path]
Requirement = Callable[[Mapping[str, Any]], bool]


def _always(config: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Mutant:
    """One defect: how to inject it, and which gates must catch it."""

    name: str
    description: str
    base_format: Literal["safetensors", "gguf"]
    gates: tuple[str, ...]
    effect: Effect
    build: Builder
    # Which fixtures the defect can be written into, judged from config.json.
    requires: Requirement = field(default=_always)
    # "bpe": the defect lives in a BPE vocabulary's merges or pre-tokenizer, which a
    # SentencePiece vocabulary (a checkpoint with tokenizer.model) does not have.
    vocabulary: Literal["any", "bpe"] = "any"


def _target(fixture: Path, out_dir: Path, name: str, suffix: str = "") -> Path:
    fixture, out_dir = fixture.resolve(), out_dir.resolve()
    if out_dir == fixture or fixture in out_dir.parents:
        raise UsageError(f"{out_dir}: mutants are never written inside the fixture {fixture}")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"{fixture.name}-{name}{suffix}"


def _weights(name: str, edit: Callable[[dict[str, Any], dict[str, Any]], None]) -> Builder:
    def build(fixture: Path, out_dir: Path) -> Path:
        return weights.edit_checkpoint(fixture, _target(fixture, out_dir, name), edit)

    return build


def _files(name: str, mutate: Callable[[Path], Path]) -> Builder:
    def build(fixture: Path, out_dir: Path) -> Path:
        return mutate(copy_checkpoint(fixture, _target(fixture, out_dir, name)))

    return build


def _gguf(name: str, quant: str, rewrite: Callable[[Path, Path], Path] | None) -> Builder:
    """A GGUF mutant: ``rewrite(src, dst)`` writes a changed copy; None copies the
    bytes for an in-place ``_bytes`` mutation."""

    def build(fixture: Path, out_dir: Path) -> Path:
        dst = _target(fixture, out_dir, name, ".gguf")
        scratch = dst.with_name(f".{dst.name}.scratch")
        try:
            src = fixture_gguf(fixture, quant, scratch)
            if rewrite is None:
                shutil.copyfile(src, dst)
                return dst
            return rewrite(src, dst)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return build


def _bytes(name: str, mutate: Callable[[Path], Path]) -> Builder:
    copy = _gguf(name, "f32", None)

    def build(fixture: Path, out_dir: Path) -> Path:
        return mutate(copy(fixture, out_dir))

    return build


def _untied(config: Mapping[str, Any]) -> bool:
    return not config.get("tie_word_embeddings", False)


def _two_layers(config: Mapping[str, Any]) -> bool:
    return int(config.get("num_hidden_layers", 0)) >= 2


def _digit_runs(config: Mapping[str, Any]) -> bool:
    # transformers 5 gives qwen2 its own pre-tokenizer whatever tokenizer.json says.
    return config.get("model_type") in ("llama", "mistral")


def _rotary_permuted(config: Mapping[str, Any]) -> bool:
    return architecture(config.get("model_type")).gguf_permutes_qk


def _rotary_plain(config: Mapping[str, Any]) -> bool:
    arch = architecture(config.get("model_type"))
    return arch.known and not arch.gguf_permutes_qk


def _attention_output_unnormed(config: Mapping[str, Any]) -> bool:
    return GEMMA2_ATTN_POST_NORM not in architecture(config.get("model_type")).tensors


def _logits_uncapped(config: Mapping[str, Any]) -> bool:
    # Gemma 2 soft-caps its logits (30 tanh(x / 30)): every flooded row saturates at
    # the cap alike, and PAD wins no more than any other token.
    return not config.get("final_logit_softcapping")


def _norm_offset(config: Mapping[str, Any]) -> bool:
    return bool(architecture(config.get("model_type")).norm_offset)


_DOWN = FFN_DOWN.name("safetensors", 0)
_O = ATTN_OUT.name("safetensors", 0)
_LOAD = "G1-LOAD-001"
_SHAPES = "G0-INTEGRITY-001"
_GGUF_HEADER = "G0-INTEGRITY-005"
_FP_FINITE, _FP_CHECKSUM, _FP_TENSORS = "F-ROSETTA-FP-001", "F-ROSETTA-FP-002", "F-ROSETTA-FP-003"
_STATS_NORM, _NORM_ZERO, _NORM_STD = (
    "F-ROSETTA-STATS-001",
    "F-ROSETTA-STATS-005",
    "F-ROSETTA-STATS-006",
)

_TABLE: tuple[Mutant, ...] = (
    Mutant(
        "embedding-transposed",
        "token embedding stored as (hidden, vocab)",
        "safetensors",
        (_SHAPES, _LOAD),
        "load_fails",
        _weights("embedding-transposed", weights.st_embedding_transposed),
    ),
    Mutant(
        "gguf-embedding-transposed",
        "GGUF token_embd stored transposed",
        "gguf",
        (_SHAPES, _LOAD, "F-ROSETTA-DIFF-001"),
        "load_fails",
        _gguf("gguf-embedding-transposed", "f32", weights.gguf_embedding_transposed),
    ),
    Mutant(
        "gguf-qk-permutation-missing",
        "GGUF Q/K rows left in Hugging Face rotary order (llama needs the permutation)",
        "gguf",
        # Not F-ROSETTA-INF-001: on tiny-qa (one layer of attention) 95.2% of positions
        # keep their top-1 token, above the f32 floor; the KL (0.138 against 0.001) and the
        # tensor layout catch it on every fixture.
        ("F-A1-001", "F-ROSETTA-INF-002", "F-ROSETTA-DIFF-001", "F-TRACE-DIFF-001"),
        "wrong_answers",
        _gguf("gguf-qk-permutation-missing", "f32", weights.gguf_qk_permutation),
        _rotary_permuted,
    ),
    Mutant(
        "gguf-qk-permutation-spurious",
        "GGUF Q/K rows permuted for llama's rotary layout in an architecture that needs none",
        "gguf",
        (
            "F-A1-001",
            "F-ROSETTA-INF-001",
            "F-ROSETTA-INF-002",
            "F-ROSETTA-DIFF-001",
            "F-TRACE-DIFF-001",
        ),
        "wrong_answers",
        _gguf("gguf-qk-permutation-spurious", "f32", weights.gguf_qk_permutation),
        _rotary_plain,
    ),
    Mutant(
        "gguf-norm-offset-missing",
        "Gemma GGUF norms stored as the checkpoint's scale - 1 (the converter's +1 forgotten)",
        "gguf",
        ("F-A1-001", "F-ROSETTA-INF-001", "F-ROSETTA-INF-002", "F-ROSETTA-DIFF-003"),
        "wrong_answers",
        _gguf("gguf-norm-offset-missing", "f32", weights.gguf_norm_offset_missing),
        _norm_offset,
    ),
    Mutant(
        "norms-zeroed",
        "every RMSNorm scale zeroed (GH-189; Gemma stores scale - 1, so -1)",
        "safetensors",
        ("G0-INTEGRITY-003", "G2-INFER-001", _STATS_NORM, _NORM_ZERO, _NORM_STD),
        "zero_tensor",
        _weights("norms-zeroed", weights.st_norms_zeroed),
    ),
    Mutant(
        "nan-weight",
        f"one NaN in {_DOWN}",
        "safetensors",
        ("G0-INTEGRITY-002", _FP_FINITE, _FP_CHECKSUM, "F-TRACE-PAYLOAD-001"),
        "nonfinite_tensor",
        _weights("nan-weight", weights.st_poke(_DOWN, float("nan"))),
    ),
    Mutant(
        "inf-weight",
        f"one +Inf in {_O}",
        "safetensors",
        ("G0-INTEGRITY-002", _FP_FINITE),
        "nonfinite_tensor",
        _weights("inf-weight", weights.st_poke(_O, float("inf"))),
    ),
    Mutant(
        "zero-tensor",
        f"{_DOWN} all zeros",
        "safetensors",
        ("G0-INTEGRITY-003",),
        "zero_tensor",
        _weights("zero-tensor", weights.st_zero_tensor(_DOWN)),
    ),
    Mutant(
        "activations-exploding",
        f"{_O} multiplied by {weights.EXPLODE_FACTOR:g}: layer 0's output swamps the residual",
        "safetensors",
        ("F-A1-001", "F-TRACE-PAYLOAD-003"),
        "wrong_answers",
        _weights("activations-exploding", weights.st_scale(_O, weights.EXPLODE_FACTOR)),
        # transformers hands back the last layer's output after the final norm: with one
        # layer, the swamped residual is never seen. Gemma 2 normalizes the attention
        # output before the residual, so a scaled o_proj comes out as it went in.
        lambda config: _two_layers(config) and _attention_output_unnormed(config),
    ),
    Mutant(
        "gguf-pad-flood",
        "GGUF whose greedy output is always the PAD token (GH-186)",
        "gguf",
        (
            "F-ROSETTA-INF-003",
            "F-ROSETTA-INF-001",
            "F-A1-001",
            "F-ROSETTA-DIFF-003",
            "F-TRACE-PAYLOAD-002",
        ),
        "pad_flood",
        _gguf("gguf-pad-flood", "f32", weights.gguf_pad_flood),
        _logits_uncapped,
    ),
    Mutant(
        "tokenizer-missing",
        "every tokenizer file deleted (transformers 5 then builds an empty qwen2 tokenizer)",
        "safetensors",
        ("G0-INTEGRITY-004",),
        "tokenizer",
        _files("tokenizer-missing", files.remove_tokenizer),
    ),
    Mutant(
        "merges-dropped",
        "tokenizer.json BPE merges emptied",
        "safetensors",
        ("F-TOK-PARITY-001",),
        "tokenizer",
        _files("merges-dropped", files.drop_merges),
    ),
    Mutant(
        "gguf-merges-dropped",
        "GGUF without tokenizer.ggml.merges",
        "gguf",
        ("G0-INTEGRITY-004", _LOAD),
        "load_fails",
        _gguf("gguf-merges-dropped", "f32", files.gguf_drop_merges),
        vocabulary="bpe",
    ),
    Mutant(
        "gguf-wrong-pretokenizer",
        "GGUF tokenizer.ggml.pre wrong (llama-bpe -> qwen2, or gpt-2 without multi-digit tokens; qwen2 -> gpt-2)",
        "gguf",
        ("F-TOK-PARITY-001",),
        "tokenizer",
        _gguf("gguf-wrong-pretokenizer", "f32", files.gguf_wrong_pre),
        vocabulary="bpe",
    ),
    Mutant(
        "hf-wrong-pretokenizer",
        "tokenizer.json splits digits one by one where the model learned runs of three "
        "(GPT-2's split without multi-digit tokens)",
        "safetensors",
        ("F-TOK-PARITY-001",),
        "tokenizer",
        _files("hf-wrong-pretokenizer", files.hf_wrong_pre),
        _digit_runs,
    ),
    Mutant(
        "config-vocab-mismatch",
        "config.json vocab_size 16 more than the embedding has",
        "safetensors",
        (_SHAPES, _LOAD),
        "load_fails",
        _files("config-vocab-mismatch", files.config_bump("vocab_size", lambda v: v + 16)),
    ),
    Mutant(
        "config-hidden-mismatch",
        "config.json hidden_size twice the tensors'",
        "safetensors",
        (_SHAPES, _LOAD),
        "load_fails",
        _files("config-hidden-mismatch", files.config_bump("hidden_size", lambda v: v * 2)),
    ),
    Mutant(
        "config-layers-mismatch",
        "config.json num_hidden_layers one more than the checkpoint has",
        "safetensors",
        (_SHAPES,),
        "shape_mismatch",
        _files("config-layers-mismatch", files.config_bump("num_hidden_layers", lambda v: v + 1)),
    ),
    Mutant(
        "lm-head-wrong-shape",
        "untied lm_head 8 rows short of the vocabulary",
        "safetensors",
        (_SHAPES, _LOAD),
        "load_fails",
        _weights("lm-head-wrong-shape", weights.st_lm_head_shape),
        _untied,
    ),
    Mutant(
        "truncated-safetensors",
        f"model.safetensors cut to {files.TRUNCATE_FRACTION:.0%} of its length",
        "safetensors",
        (_SHAPES, _LOAD),
        "load_fails",
        _files("truncated-safetensors", files.truncate_weights),
    ),
    Mutant(
        "truncated-gguf",
        f"GGUF cut to {files.TRUNCATE_FRACTION:.0%} of its length",
        "gguf",
        (_GGUF_HEADER, _LOAD),
        "load_fails",
        _bytes("truncated-gguf", files.truncate),
    ),
    Mutant(
        "gguf-bad-magic",
        "GGUF magic overwritten",
        "gguf",
        (_GGUF_HEADER, _LOAD),
        "load_fails",
        _bytes("gguf-bad-magic", files.bad_magic),
    ),
    Mutant(
        "missing-tensor",
        f"{_DOWN} deleted (transformers re-initializes it at random, silently)",
        "safetensors",
        (_SHAPES, _FP_TENSORS),
        "shape_mismatch",
        _weights("missing-tensor", weights.st_missing_tensor(_DOWN)),
    ),
    Mutant(
        "gguf-missing-tensor",
        "GGUF without blk.0.ffn_down.weight",
        "gguf",
        (_SHAPES, _LOAD, "F-ROSETTA-DIFF-002"),
        "load_fails",
        _gguf("gguf-missing-tensor", "f32", weights.gguf_missing_tensor),
    ),
    Mutant(
        "layers-swapped",
        "decoder layers 0 and 1 swapped",
        "safetensors",
        ("F-A1-001", "F-A2-001"),
        "wrong_answers",
        _weights("layers-swapped", weights.st_layers_swapped),
        _two_layers,
    ),
    Mutant(
        "noise-drift",
        f"Gaussian noise of {weights.NOISE_SIGMA} x each matrix's std: fluent but wrong",
        "safetensors",
        # Fluent: no gateway sees it; its statistics against the reference do.
        ("F-A1-001", "F-ROSETTA-STATS-003", "F-ROSETTA-STATS-004"),
        "wrong_answers",
        _weights("noise-drift", weights.st_noise_drift),
    ),
    Mutant(
        "chat-template-broken",
        "chat template replaced by one in a format the model never saw",
        "safetensors",
        ("F-A2-001",),
        "wrong_answers",
        _files("chat-template-broken", files.break_chat_template),
    ),
    Mutant(
        "gguf-quant-scales-corrupt",
        "q8_0 GGUF block scales each multiplied by a random factor in [e^-2, e^2]",
        "gguf",
        (
            "F-ROSETTA-INF-002",
            "F-ROSETTA-INF-001",
            "F-A1-001",
            "F-ROSETTA-DIFF-003",
            "F-TRACE-DIFF-001",
        ),
        "quant_error",
        _gguf("gguf-quant-scales-corrupt", "q8_0", weights.gguf_quant_scales),
    ),
)

MUTANTS: dict[str, Mutant] = {m.name: m for m in _TABLE}
"""Every mutant by name, in table order."""


def applies(name: str, fixture_dir: Path) -> bool:
    """Whether mutant ``name`` can be written into the fixture at ``fixture_dir``."""
    mutant = _mutant(name)
    fixture_dir = Path(fixture_dir)
    if mutant.vocabulary == "bpe" and (fixture_dir / "tokenizer.model").is_file():
        return False
    return mutant.requires(read_config(fixture_dir))


def build_mutant(name: str, fixture_dir: Path, out_dir: Path) -> Path:
    """Write mutant ``name`` of the fixture into ``out_dir``; return the artifact."""
    mutant = _mutant(name)
    fixture_dir = Path(fixture_dir)
    if not applies(name, fixture_dir):
        raise UsageError(f"{fixture_dir}: mutant {name} does not apply to this model")
    return mutant.build(fixture_dir, Path(out_dir))


def _mutant(name: str) -> Mutant:
    if name not in MUTANTS:
        raise UsageError(f"unknown mutant {name!r}; known: {', '.join(MUTANTS)}")
    return MUTANTS[name]
