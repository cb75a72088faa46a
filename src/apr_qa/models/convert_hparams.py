"""The hyperparameters the reference GGUF converter writes, per architecture.

Read from config.json and written under the keys llama.cpp's own converter uses
(conversion/llama.py, gemma.py ``Gemma2Model``, phi.py ``Phi3MiniModel``). A config
that llama.cpp's graph for the architecture cannot represent is refused with a
UsageError that says why, rather than converted into a GGUF that computes
something else:

- gemma2: llama.cpp scales queries by ``1/sqrt(head_dim)``, soft-caps attention
  and final logits, and alternates sliding-window and full layers starting with a
  sliding one; the output projection is always the token embedding;
- phi3: ``longrope``/``su`` rope scaling (the 128k models' per-dimension factors)
  is not written by this converter;
- everything else: llama's set (silu, default or linear rope).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from apr_qa.errors import UsageError
from apr_qa.models.architectures import Architecture
from apr_qa.models.config import CONFIG_FILE, ModelConfig

__all__ = ["HParams"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HParams:
    """The GGUF hyperparameters of one checkpoint (``None``: not written)."""

    gguf_arch: str
    vocab_size: int
    context_length: int
    hidden: int
    blocks: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    rope_dims: int
    rope_theta: float
    rope_linear_factor: float | None
    rms_eps: float
    tied: bool
    sliding_window: int | None = None
    attn_softcap: float | None = None
    final_softcap: float | None = None
    rope_orig_context: int | None = None

    @classmethod
    def from_config(cls, src: Path, facts: ModelConfig, arch: Architecture) -> HParams:
        """Read ``facts`` (config.json in ``src``) for architecture ``arch``."""
        where = src / CONFIG_FILE
        gguf_arch = arch.gguf_arch
        config = facts.raw

        def need(key: str) -> int:
            return facts.require(key, where)

        _check_activation(where, config, gguf_arch)
        heads = need("num_attention_heads")
        hidden = need("hidden_size")
        kv_heads = facts.kv_heads or heads
        head_dim = facts.size("head_dim") or hidden // heads
        if heads % kv_heads or head_dim % 2:
            raise UsageError(f"{where}: {heads} heads / {kv_heads} kv heads / head_dim {head_dim}")
        rope = _rope(config)
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if gguf_arch == "phi3" and rope_type in ("longrope", "su"):
            raise UsageError(
                f"{where}: phi3 rope type {rope_type!r} (per-dimension long/short factors) "
                "is not supported by this converter; use llama.cpp's convert_hf_to_gguf.py"
            )
        if rope_type not in ("default", "linear"):
            raise UsageError(f"{where}: rope type {rope_type!r} is not supported (default, linear)")
        factor = float(rope["factor"]) if rope_type == "linear" else None
        theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
        partial = float(rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 1)))
        base = cls(
            gguf_arch=gguf_arch,
            vocab_size=need("vocab_size"),
            context_length=int(config.get("max_position_embeddings") or 2048),
            hidden=hidden,
            blocks=need("num_hidden_layers"),
            ffn=need("intermediate_size"),
            heads=heads,
            kv_heads=int(kv_heads),
            head_dim=int(head_dim),
            rope_dims=int(head_dim * partial),
            rope_theta=float(theta),
            rope_linear_factor=factor,
            rms_eps=float(config.get("rms_norm_eps", 1e-6)),
            # Not declared: transformers' default for the architecture (Gemma ties).
            tied=arch.tied_by_default
            if facts.tie_word_embeddings is None
            else facts.tie_word_embeddings,
        )
        if gguf_arch == "gemma2":
            return _gemma2(where, config, base)
        if gguf_arch == "phi3":
            return _phi3(config, base)
        if config.get("use_sliding_window") or config.get("sliding_window"):
            log.info("%s: sliding window attention is not written; llama.cpp attends fully", where)
        return base

    def write(self, writer: Any) -> None:
        """Add the hyperparameter keys to a ``gguf.GGUFWriter``."""
        import gguf

        writer.add_vocab_size(self.vocab_size)
        writer.add_context_length(self.context_length)
        writer.add_embedding_length(self.hidden)
        writer.add_block_count(self.blocks)
        writer.add_feed_forward_length(self.ffn)
        writer.add_head_count(self.heads)
        writer.add_head_count_kv(self.kv_heads)
        writer.add_rope_freq_base(self.rope_theta)
        writer.add_rope_dimension_count(self.rope_dims)
        writer.add_layer_norm_rms_eps(self.rms_eps)
        if self.head_dim * self.heads != self.hidden or self.gguf_arch == "gemma2":
            writer.add_key_length(self.head_dim)
            writer.add_value_length(self.head_dim)
        if self.rope_linear_factor is not None:
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(self.rope_linear_factor)
        if self.rope_orig_context is not None:
            writer.add_rope_scaling_orig_ctx_len(self.rope_orig_context)
        if self.attn_softcap is not None:
            writer.add_attn_logit_softcapping(self.attn_softcap)
        if self.final_softcap is not None:
            writer.add_final_logit_softcapping(self.final_softcap)
        if self.sliding_window is not None:
            writer.add_sliding_window(self.sliding_window)


def _rope(config: Mapping[str, Any]) -> dict[str, Any]:
    # transformers 5 moved rope settings into rope_parameters; older configs keep
    # rope_theta and rope_scaling at the top level.
    rope = dict(config.get("rope_scaling") or {})
    rope.update(config.get("rope_parameters") or {})
    return rope


def _check_activation(where: Path, config: Mapping[str, Any], gguf_arch: str) -> None:
    # Gemma 2 names it hidden_activation (hidden_act in older configs); llama.cpp's
    # gemma2 graph computes GELU with the tanh approximation, everything else SiLU.
    wanted = "gelu_pytorch_tanh" if gguf_arch == "gemma2" else "silu"
    act = config.get("hidden_activation") or config.get("hidden_act") or wanted
    if act != wanted:
        raise UsageError(f"{where}: activation {act!r} is not {wanted}, which llama.cpp computes")


def _gemma2(where: Path, config: Mapping[str, Any], base: HParams) -> HParams:
    scalar = config.get("query_pre_attn_scalar", base.head_dim)
    if scalar != base.head_dim:
        raise UsageError(
            f"{where}: query_pre_attn_scalar {scalar} differs from head_dim {base.head_dim}; "
            f"llama.cpp's gemma2 scales queries by 1/sqrt(head_dim), so this model "
            "cannot be represented"
        )
    if not base.tied:
        raise UsageError(
            f"{where}: tie_word_embeddings is false; llama.cpp's gemma2 always uses the "
            "token embedding as the output projection"
        )
    caps = {}
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        value = config.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise UsageError(
                f"{where}: {key} {value!r}; llama.cpp's gemma2 always soft-caps, "
                "so a model without it cannot be represented"
            )
        caps[key] = float(value)
    layer_types = config.get("layer_types")
    alternating = ["sliding_attention" if i % 2 == 0 else "full_attention"
                   for i in range(base.blocks)]  # fmt: skip
    if layer_types is not None and list(layer_types) != alternating:
        raise UsageError(
            f"{where}: layer_types {layer_types} are not Gemma 2's alternation (sliding "
            "first), the only pattern llama.cpp's gemma2 graph has"
        )
    window = config.get("sliding_window")
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        raise UsageError(f"{where}: sliding_window {window!r} is not a positive integer")
    return replace(
        base,
        sliding_window=window,
        attn_softcap=caps["attn_logit_softcapping"],
        final_softcap=caps["final_logit_softcapping"],
    )


def _phi3(config: Mapping[str, Any], base: HParams) -> HParams:
    window = config.get("sliding_window")
    orig = config.get("original_max_position_embeddings")
    return replace(
        base,
        # llama.cpp's converter writes 0 for "none" (it tells Phi-4 from Phi-3 by it).
        sliding_window=int(window) if window else 0,
        rope_orig_context=int(orig) if orig else None,
    )
