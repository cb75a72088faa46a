"""Mutants that damage weights: values, shapes, order, layout, quantization.

Each function here writes one broken copy and returns its path; the table in
``apr_qa.testing.mutants`` names them. Safetensors edits work on float32 copies and
store the result back in the tensor's own dtype; GGUF edits go through
:func:`apr_qa.testing.mutants_io.rewrite_gguf`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from apr_qa.errors import UsageError
from apr_qa.models.architectures import (
    ATTN_K,
    ATTN_Q,
    ATTN_QKV,
    EMBED,
    FFN_DOWN,
    OUTPUT,
    OUTPUT_NORM,
    architecture,
    gguf_architecture,
)
from apr_qa.models.rotary import move_fused_qk, permute_qk, unpermute_qk
from apr_qa.testing.mutants_io import (
    WEIGHTS,
    StTensor,
    copy_checkpoint,
    read_config,
    read_safetensors,
    rewrite_gguf,
    write_safetensors,
)

__all__ = [
    "EMBEDDING",
    "EXPLODE_FACTOR",
    "LM_HEAD",
    "NOISE_SIGMA",
    "edit_checkpoint",
    "gguf_embedding_transposed",
    "gguf_missing_tensor",
    "gguf_norm_offset_missing",
    "gguf_pad_flood",
    "gguf_qk_permutation",
    "gguf_quant_scales",
    "st_embedding_transposed",
    "st_layers_swapped",
    "st_lm_head_shape",
    "st_missing_tensor",
    "st_noise_drift",
    "st_norms_zeroed",
    "st_poke",
    "st_zero_tensor",
]

EMBEDDING = EMBED.name("safetensors")
LM_HEAD = OUTPUT.name("safetensors")
# Relative std of the drift noise (times each matrix's own std). Measured on 16
# prompts of each fixture: 0.3 misses 2, 0.5 misses 4 (answers off by one, e.g. "5"
# for "4"; none flagged as garbage), 0.7 misses 5-6, still fluent.
NOISE_SIGMA = 0.5
EXPLODE_FACTOR = 1e6
_SEED = 20240601

Tensors = dict[str, StTensor]


def edit_checkpoint(
    fixture: Path, dst: Path, edit: Callable[[Tensors, dict[str, Any]], None]
) -> Path:
    """Copy the fixture's checkpoint to ``dst`` and apply ``edit`` to its tensors."""
    copy_checkpoint(fixture, dst)
    metadata, tensors = read_safetensors(dst / WEIGHTS)
    edit(tensors, read_config(dst))
    write_safetensors(dst / WEIGHTS, tensors, metadata)
    return dst


def _need(tensors: Tensors, name: str) -> StTensor:
    if name not in tensors:
        raise UsageError(f"checkpoint has no tensor {name}")
    return tensors[name]


def _replace(tensors: Tensors, name: str, values: np.ndarray[Any, Any]) -> None:
    tensors[name] = StTensor.from_f32(values, tensors[name].dtype)


def st_embedding_transposed(tensors: Tensors, config: dict[str, Any]) -> None:
    """Store the token embedding as (hidden, vocab): the classic conversion bug."""
    _replace(tensors, EMBEDDING, _need(tensors, EMBEDDING).to_f32().T)


def st_norms_zeroed(tensors: Tensors, config: dict[str, Any]) -> None:
    """Zero every RMSNorm scale (the original's GH-189).

    Gemma stores ``scale - 1``: its zero scale is a stored -1, while a stored 0 is the
    identity and no defect at all.
    """
    arch = architecture(config.get("model_type"))
    names = [n for n in tensors if arch.is_norm("safetensors", n)]
    if not names:
        raise UsageError("checkpoint has no norm weights")
    stored = -(arch.scale_offset("safetensors") or 0.0)
    for name in names:
        _replace(tensors, name, np.full(tensors[name].shape, stored, np.float32))


def st_poke(name: str, value: float) -> Callable[[Tensors, dict[str, Any]], None]:
    """Set one element in the middle of tensor ``name`` to ``value`` (NaN, Inf)."""

    def edit(tensors: Tensors, config: dict[str, Any]) -> None:
        values = _need(tensors, name).to_f32()
        values.flat[values.size // 2] = value
        _replace(tensors, name, values)

    return edit


def st_scale(name: str, factor: float) -> Callable[[Tensors, dict[str, Any]], None]:
    """Multiply a whole tensor by ``factor``: its layer's output swamps the residual."""

    def edit(tensors: Tensors, config: dict[str, Any]) -> None:
        _replace(tensors, name, _need(tensors, name).to_f32() * np.float32(factor))

    return edit


def st_zero_tensor(name: str) -> Callable[[Tensors, dict[str, Any]], None]:
    """Zero a whole tensor."""

    def edit(tensors: Tensors, config: dict[str, Any]) -> None:
        _replace(tensors, name, np.zeros(_need(tensors, name).shape, np.float32))

    return edit


def st_lm_head_shape(tensors: Tensors, config: dict[str, Any]) -> None:
    """Drop the last 8 rows of an untied lm_head: fewer logits than the vocabulary."""
    _replace(tensors, LM_HEAD, _need(tensors, LM_HEAD).to_f32()[:-8])


def st_missing_tensor(name: str) -> Callable[[Tensors, dict[str, Any]], None]:
    """Delete tensor ``name``; transformers quietly initializes it at random."""

    def edit(tensors: Tensors, config: dict[str, Any]) -> None:
        _need(tensors, name)
        del tensors[name]

    return edit


def st_layers_swapped(tensors: Tensors, config: dict[str, Any]) -> None:
    """Swap decoder layers 0 and 1, every tensor of each."""
    pattern = re.compile(r"^model\.layers\.([01])\.(.+)$")
    moved = {}
    for name, tensor in tensors.items():
        if m := pattern.match(name):
            moved[f"model.layers.{1 - int(m[1])}.{m[2]}"] = tensor
    if not any(n.startswith("model.layers.1.") for n in moved):
        raise UsageError("checkpoint has fewer than two layers to swap")
    tensors.update(moved)


def st_noise_drift(tensors: Tensors, config: dict[str, Any]) -> None:
    """Add seeded Gaussian noise, ``NOISE_SIGMA`` times each matrix's std, to every
    matrix: the model stays fluent but drifts off its answers."""
    rng = np.random.default_rng(_SEED)
    for name in list(tensors):
        values = tensors[name].to_f32()
        if values.ndim == 2:
            noise = rng.standard_normal(values.shape).astype(np.float32)
            _replace(tensors, name, values + noise * (NOISE_SIGMA * float(values.std())))


# --- GGUF --------------------------------------------------------------------


def _gguf_meta(path: Path) -> dict[str, Any]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {f.name: f.contents() for f in reader.fields.values() if not f.name.startswith("GGUF.")}


def _f32_only(name: str, data: np.ndarray[Any, Any], qtype: Any) -> None:
    import gguf

    # Edits produce float32 arrays; any other stored type would need re-encoding.
    if qtype != gguf.GGMLQuantizationType.F32:
        raise UsageError(f"tensor {name} is {qtype.name}; this mutant edits f32 GGUFs")


def gguf_embedding_transposed(src: Path, out: Path) -> Path:
    """A GGUF whose token embedding is stored transposed."""

    def edit(name: str, data: np.ndarray[Any, Any], qtype: Any) -> np.ndarray[Any, Any]:
        if name == EMBED.name("gguf"):
            _f32_only(name, data, qtype)
            return data.T
        return data

    return rewrite_gguf(src, out, edit=edit)


def gguf_missing_tensor(src: Path, out: Path) -> Path:
    """A GGUF without ``blk.0.ffn_down.weight``."""

    def edit(name: str, data: np.ndarray[Any, Any], qtype: Any) -> np.ndarray[Any, Any] | None:
        return None if name == FFN_DOWN.name("gguf", 0) else data

    return rewrite_gguf(src, out, edit=edit)


def gguf_qk_permutation(src: Path, out: Path) -> Path:
    """A GGUF whose Q/K rows are in the wrong rotary layout for its architecture.

    llama's graph expects the converter's permutation: undo it (the missing-permutation
    bug). qwen2's, gemma2's and phi3's graphs expect Hugging Face's order: apply it
    (the spurious one), inside phi3's fused qkv too.
    """
    meta = _gguf_meta(src)
    arch = meta["general.architecture"]
    heads = int(meta[f"{arch}.attention.head_count"])
    kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
    # The converter permuted exactly when the table says so: undo it, or do it.
    move = unpermute_qk if gguf_architecture(arch).gguf_permutes_qk else permute_qk

    def edit(name: str, data: np.ndarray[Any, Any], qtype: Any) -> np.ndarray[Any, Any]:
        for role, n in ((ATTN_Q, heads), (ATTN_K, kv_heads)):
            if f".{role.gguf}." in name:
                _f32_only(name, data, qtype)
                return move(data, n)
        if f".{ATTN_QKV.gguf}." in name:
            # phi3 fuses q, k and v into one matrix, rows in that order: move q and k.
            _f32_only(name, data, qtype)
            return move_fused_qk(data, heads, kv_heads, move)
        return data

    return rewrite_gguf(src, out, edit=edit)


def gguf_norm_offset_missing(src: Path, out: Path) -> Path:
    """A Gemma GGUF whose norms hold the checkpoint's ``scale - 1``: the converter
    forgot llama.cpp's +1, so every norm scales by one less than it should."""
    arch = gguf_architecture(_gguf_meta(src)["general.architecture"])
    offset = arch.norm_offset
    if not offset:
        raise UsageError(f"{src}: {arch.gguf_arch or 'this'} architecture stores norms as is")

    def edit(name: str, data: np.ndarray[Any, Any], qtype: Any) -> np.ndarray[Any, Any]:
        if arch.is_norm("gguf", name):
            _f32_only(name, data, qtype)
            return (data - np.float32(offset)).astype(np.float32)
        return data

    return rewrite_gguf(src, out, edit=edit)


def gguf_pad_flood(src: Path, out: Path) -> Path:
    """A GGUF that answers every prompt with the PAD token (GH-186).

    Every token embedding gets a large constant on hidden dimension 0, so the final
    hidden state points along it whatever the prompt; the PAD row of the output
    matrix (of the embedding, when tied) is the only one that grows along it.
    """
    meta = _gguf_meta(src)
    pad = int(meta["tokenizer.ggml.padding_token_id"])
    import gguf

    reader = gguf.GGUFReader(str(src))
    names = {t.name for t in reader.tensors}
    tied = OUTPUT.name("gguf") not in names
    shift = 1000.0

    def edit(name: str, data: np.ndarray[Any, Any], qtype: Any) -> np.ndarray[Any, Any]:
        if name == EMBED.name("gguf"):
            _f32_only(name, data, qtype)
            data = data.astype(np.float32)
            boost = 2.0 * float(np.abs(data[:, 0]).max()) + 1.0
            data[:, 0] += shift
            if tied:
                data[pad] = 0.0
                data[pad, 0] = shift + boost
            return data
        if name == OUTPUT.name("gguf"):
            _f32_only(name, data, qtype)
            data = data.astype(np.float32)
            boost = 2.0 * float(np.abs(data[:, 0]).max()) + 1.0
            data[pad] = 0.0
            data[pad, 0] = boost
            return data
        if name == OUTPUT_NORM.name("gguf"):
            data = data.astype(np.float32)
            data[0] = 1.0  # a positive gain keeps the direction's sign
            return data
        return data

    return rewrite_gguf(src, out, edit=edit)


def gguf_quant_scales(src: Path, out: Path) -> Path:
    """A q8_0 GGUF whose block scales are each multiplied by a random factor in
    [e^-2, e^2]: dequantized weights far outside q8_0's error."""
    import gguf

    rng = np.random.default_rng(_SEED)
    scaled = (
        gguf.GGMLQuantizationType.Q8_0,
        gguf.GGMLQuantizationType.Q4_0,
        gguf.GGMLQuantizationType.Q4_1,
        gguf.GGMLQuantizationType.Q5_0,
        gguf.GGMLQuantizationType.Q5_1,
        gguf.GGMLQuantizationType.Q4_K,
        gguf.GGMLQuantizationType.Q5_K,
    )

    def edit(name: str, data: np.ndarray[Any, Any], qtype: Any) -> np.ndarray[Any, Any]:
        if qtype not in scaled:
            return data
        # These block types all start with the block's f16 scale (the K-quants: the
        # super-block scale d, before dmin).
        size = gguf.GGML_QUANT_SIZES[qtype][1]
        blocks = data.reshape(-1, size).copy()
        scales = blocks[:, :2].copy().view("<f2").astype(np.float32)[:, 0]
        factors = np.exp(rng.uniform(-2.0, 2.0, scales.shape)).astype(np.float32)
        blocks[:, :2] = (scales * factors).astype("<f2").reshape(-1, 1).view(np.uint8)
        return blocks.reshape(data.shape)

    return rewrite_gguf(src, out, edit=edit)
