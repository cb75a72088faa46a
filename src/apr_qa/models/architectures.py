"""The architecture table: what a checkpoint of each known architecture holds.

For each architecture users bring (the certification table's llama, mistral,
qwen2, gemma2, phi3, and their close kin gemma and qwen3):

- its tensors, each under its Hugging Face and its GGUF name (the one HF<->GGUF
  tensor-name table, checked against gguf-py's ``TensorNameMap`` by a test), with
  its shape in config sizes: phi3 fuses q/k/v into ``qkv_proj`` and gate/up into
  ``gate_up_proj``; qwen2 has q/k/v biases; gemma2 has four norms per layer;
- whether the output projection is tied to the embedding when config.json does
  not say (transformers' default for the architecture);
- how its norm weights are stored: Gemma's RMSNorm computes ``x * (1 + w)`` and
  stores ``w = scale - 1``, so in its safetensors an all-zero norm is the identity
  and an all ``-1`` norm (scale 0) is the broken one; llama.cpp's converter adds
  the 1 back, so every GGUF norm stores the scale itself;
- whether the GGUF converter permutes q/k rows for llama.cpp's rotary layout
  (:mod:`apr_qa.models.rotary`).

An architecture not in the table gets :data:`FALLBACK`: llama's names, so that
whatever follows them is still compared, but nothing is required and the norm
storage is not known (``norm_offset`` is ``None``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ARCHITECTURES",
    "ATTN_K",
    "ATTN_OUT",
    "ATTN_Q",
    "EMBED",
    "FALLBACK",
    "FFN_DOWN",
    "FFN_UP",
    "LAYER_PREFIX",
    "OUTPUT",
    "OUTPUT_NORM",
    "Architecture",
    "Dims",
    "ModelFormat",
    "TensorRole",
    "architecture",
    "gguf_architecture",
]

ModelFormat = Literal["safetensors", "gguf"]

LAYER_PREFIX: Mapping[ModelFormat, str] = {"safetensors": "model.layers", "gguf": "blk"}
"""Where each format puts a decoder layer's tensors (``model.layers.N.`` / ``blk.N.``)."""
_SUFFIXES = (".weight", ".bias")


@dataclass(frozen=True)
class TensorRole:
    """One tensor an architecture holds, under both names, and its shape in sizes.

    ``hf`` and ``gguf`` are name stems without ``.weight``/``.bias``; a per-layer
    stem is relative to the layer prefix (``self_attn.q_proj`` / ``attn_q``).
    ``shape`` names :class:`Dims` fields (``("q", "hidden")``). ``what`` is how a
    finding calls it.
    """

    role: str
    hf: str
    gguf: str
    shape: tuple[str, ...]
    per_layer: bool = True
    suffix: str = ".weight"
    what: str = ""

    @property
    def is_norm(self) -> bool:
        """Whether this is a normalization scale."""
        return self.role.endswith("norm")

    def name(self, fmt: ModelFormat, layer: int | None = None) -> str:
        """The tensor's name in ``fmt`` (``layer`` for a per-layer tensor)."""
        stem = self.hf if fmt == "safetensors" else self.gguf
        if self.per_layer:
            stem = f"{LAYER_PREFIX[fmt]}.{layer}.{stem}"
        return stem + self.suffix

    def label(self, layer: int | None = None) -> str:
        """How a finding names it: ``layer 0 q``, ``token embedding``."""
        return f"layer {layer} {self.role}" if self.per_layer else self.what


def _layer(role: str, hf: str, gguf: str, *shape: str) -> TensorRole:
    return TensorRole(role, hf, gguf, shape)


def _bias(weight: TensorRole) -> TensorRole:
    return TensorRole(
        f"{weight.role}_bias", weight.hf, weight.gguf, weight.shape[:1], True, ".bias"
    )


EMBED = TensorRole(
    "embed", "model.embed_tokens", "token_embd", ("vocab", "hidden"), False, what="token embedding"
)
OUTPUT_NORM = TensorRole(
    "output_norm", "model.norm", "output_norm", ("hidden",), False, what="final norm"
)
OUTPUT = TensorRole(
    "output", "lm_head", "output", ("vocab", "hidden"), False, what="output projection"
)

ATTN_NORM = _layer("attn_norm", "input_layernorm", "attn_norm", "hidden")
ATTN_Q = _layer("q", "self_attn.q_proj", "attn_q", "q", "hidden")
ATTN_K = _layer("k", "self_attn.k_proj", "attn_k", "kv", "hidden")
ATTN_V = _layer("v", "self_attn.v_proj", "attn_v", "kv", "hidden")
ATTN_OUT = _layer("o", "self_attn.o_proj", "attn_output", "hidden", "q")
ATTN_QKV = _layer("qkv", "self_attn.qkv_proj", "attn_qkv", "qkv", "hidden")
ATTN_Q_NORM = _layer("q_norm", "self_attn.q_norm", "attn_q_norm", "head_dim")
ATTN_K_NORM = _layer("k_norm", "self_attn.k_norm", "attn_k_norm", "head_dim")
FFN_NORM = _layer("ffn_norm", "post_attention_layernorm", "ffn_norm", "hidden")
FFN_GATE = _layer("gate", "mlp.gate_proj", "ffn_gate", "ffn", "hidden")
FFN_UP = _layer("up", "mlp.up_proj", "ffn_up", "ffn", "hidden")
FFN_GATE_UP = _layer("gate_up", "mlp.gate_up_proj", "ffn_up", "gate_up", "hidden")
FFN_DOWN = _layer("down", "mlp.down_proj", "ffn_down", "hidden", "ffn")
# Gemma 2 normalizes before and after both attention and the MLP; its HF
# post_attention_layernorm is llama.cpp's post_attention_norm, not ffn_norm.
GEMMA2_ATTN_POST_NORM = _layer(
    "attn_post_norm", "post_attention_layernorm", "post_attention_norm", "hidden"
)
GEMMA2_FFN_NORM = _layer("ffn_norm", "pre_feedforward_layernorm", "ffn_norm", "hidden")
GEMMA2_FFN_POST_NORM = _layer(
    "ffn_post_norm", "post_feedforward_layernorm", "post_ffw_norm", "hidden"
)

_GLOBAL = (EMBED, OUTPUT_NORM, OUTPUT)
_LLAMA_LAYER = (ATTN_NORM, ATTN_Q, ATTN_K, ATTN_V, ATTN_OUT, FFN_NORM, FFN_GATE, FFN_UP, FFN_DOWN)


@dataclass(frozen=True)
class Architecture:
    """What a checkpoint of one architecture holds; see the module docstring.

    ``norm_offset`` is what its safetensors norm weights add to get the scale
    (``0`` for ``x * w``, ``1`` for Gemma's ``x * (1 + w)``; ``None``: unknown).
    """

    name: str
    hf_classes: tuple[str, ...]
    gguf_arch: str
    tensors: tuple[TensorRole, ...]
    tied_by_default: bool
    norm_offset: float | None
    gguf_permutes_qk: bool
    known: bool = True

    def roles(self, *, per_layer: bool) -> tuple[TensorRole, ...]:
        """The global (``per_layer=False``) or per-layer tensors."""
        return tuple(t for t in self.tensors if t.per_layer is per_layer)

    def role(self, role: str) -> TensorRole | None:
        """The tensor playing ``role`` (``"q"``, ``"gate_up"``), if this architecture has one."""
        return next((t for t in self.tensors if t.role == role), None)

    def scale_offset(self, fmt: ModelFormat) -> float | None:
        """What a stored norm weight adds to get its scale, in format ``fmt``."""
        # llama.cpp's converter stores Gemma's 1 + w: every GGUF norm is the scale.
        return 0.0 if fmt == "gguf" else self.norm_offset

    def is_norm(self, fmt: ModelFormat, name: str) -> bool:
        """Whether tensor ``name`` is a normalization scale of this architecture.

        Known names first; otherwise any ``*norm*.weight`` (the fallback's rule).
        """
        role = self._lookup(fmt, name)
        if role is not None:
            return role.is_norm and role.suffix == ".weight"
        stem = name.removesuffix(".weight")
        return stem != name and "norm" in stem.rsplit(".", 1)[-1]

    def role_of(self, fmt: ModelFormat, name: str) -> TensorRole | None:
        """The table entry of tensor ``name`` in ``fmt`` (``None``: not in the table)."""
        return self._lookup(fmt, name)

    def gguf_name(self, hf_name: str) -> str | None:
        """The GGUF name of Hugging Face tensor ``hf_name`` (``None``: not in the table)."""
        return self._translate("safetensors", "gguf", hf_name)

    def hf_name(self, gguf_name: str) -> str | None:
        """The Hugging Face name of GGUF tensor ``gguf_name`` (``None``: not in the table)."""
        return self._translate("gguf", "safetensors", gguf_name)

    def _split(self, fmt: ModelFormat, name: str) -> tuple[int | None, str, str] | None:
        suffix = next((s for s in _SUFFIXES if name.endswith(s)), None)
        if suffix is None:
            return None
        stem = name[: -len(suffix)]
        match = re.fullmatch(rf"{re.escape(LAYER_PREFIX[fmt])}\.(\d+)\.(.+)", stem)
        if match:
            return int(match[1]), match[2], suffix
        return None, stem, suffix

    def _lookup(self, fmt: ModelFormat, name: str) -> TensorRole | None:
        parts = self._split(fmt, name)
        if parts is None:
            return None
        layer, stem, suffix = parts
        for t in self.tensors:
            own = t.hf if fmt == "safetensors" else t.gguf
            if own == stem and t.per_layer is (layer is not None) and t.suffix == suffix:
                return t
        return None

    def _translate(self, src: ModelFormat, dst: ModelFormat, name: str) -> str | None:
        parts = self._split(src, name)
        if parts is None:
            return None
        layer, stem, suffix = parts
        for t in self.tensors:
            own = t.hf if src == "safetensors" else t.gguf
            if own == stem and t.per_layer is (layer is not None):
                # A bias shares its weight's stem: translate the stem, keep the suffix.
                other = t.gguf if dst == "gguf" else t.hf
                return (f"{LAYER_PREFIX[dst]}.{layer}.{other}" if t.per_layer else other) + suffix
        return None


def _arch(
    name: str,
    hf_class: str,
    gguf_arch: str,
    layer: tuple[TensorRole, ...],
    *,
    tied: bool = False,
    norm_offset: float = 0.0,
    permutes: bool = False,
) -> Architecture:
    return Architecture(name, (hf_class,), gguf_arch, _GLOBAL + layer, tied, norm_offset, permutes)


_QWEN2_LAYER = (*_LLAMA_LAYER, _bias(ATTN_Q), _bias(ATTN_K), _bias(ATTN_V))
_QWEN3_LAYER = (*_LLAMA_LAYER, ATTN_Q_NORM, ATTN_K_NORM)
_GEMMA2_LAYER = (
    ATTN_NORM, ATTN_Q, ATTN_K, ATTN_V, ATTN_OUT, GEMMA2_ATTN_POST_NORM,
    GEMMA2_FFN_NORM, FFN_GATE, FFN_UP, FFN_DOWN, GEMMA2_FFN_POST_NORM,
)  # fmt: skip
_PHI3_LAYER = (ATTN_NORM, ATTN_QKV, ATTN_OUT, FFN_NORM, FFN_GATE_UP, FFN_DOWN)

ARCHITECTURES: Mapping[str, Architecture] = {
    a.name: a
    for a in (
        # HF llama/mistral rotate q/k half-split; llama.cpp's llama graph wants pairs.
        _arch("llama", "LlamaForCausalLM", "llama", _LLAMA_LAYER, permutes=True),
        _arch("mistral", "MistralForCausalLM", "llama", _LLAMA_LAYER, permutes=True),
        _arch("qwen2", "Qwen2ForCausalLM", "qwen2", _QWEN2_LAYER),
        _arch("qwen3", "Qwen3ForCausalLM", "qwen3", _QWEN3_LAYER),
        _arch("gemma", "GemmaForCausalLM", "gemma", _LLAMA_LAYER, tied=True, norm_offset=1.0),
        _arch("gemma2", "Gemma2ForCausalLM", "gemma2", _GEMMA2_LAYER, tied=True, norm_offset=1.0),
        _arch("phi3", "Phi3ForCausalLM", "phi3", _PHI3_LAYER),
    )
}
"""Every known architecture by Hugging Face ``model_type``."""

FALLBACK = Architecture("", (), "", _GLOBAL + _LLAMA_LAYER, False, None, False, known=False)
"""Unknown architectures: llama's names, compared where present, nothing required."""


def architecture(model_type: str | None) -> Architecture:
    """The table entry for Hugging Face ``model_type``, else :data:`FALLBACK`."""
    return ARCHITECTURES.get(model_type or "", FALLBACK)


def gguf_architecture(arch: str | None) -> Architecture:
    """The table entry for a GGUF ``general.architecture``, else :data:`FALLBACK`.

    llama.cpp writes mistral as ``llama``; both have the same tensors.
    """
    return next((a for a in ARCHITECTURES.values() if a.gguf_arch == arch), FALLBACK)


@dataclass(frozen=True)
class Dims:
    """The sizes a layout's shapes are written in (``None``: not known)."""

    vocab: int | None
    hidden: int | None
    heads: int | None
    kv_heads: int | None
    head_dim: int | None
    ffn: int | None

    def value(self, dim: str) -> int | None:
        """The size a shape symbol stands for."""
        heads, kv, hd, ffn = self.heads, self.kv_heads, self.head_dim, self.ffn
        derived = {
            "q": _mul(heads, hd),
            "kv": _mul(kv, hd),
            "qkv": _mul(heads + 2 * kv, hd) if heads is not None and kv is not None else None,
            "gate_up": _mul(2, ffn),
        }
        if dim in derived:
            return derived[dim]
        value: int | None = getattr(self, dim)
        return value

    def describe(self, dim: str) -> str:
        """Where a shape symbol's size comes from, for a finding's reason."""
        heads, kv, hd = self.heads, self.kv_heads, self.head_dim
        text = {
            "vocab": f"vocab {self.vocab}",
            "hidden": f"hidden {self.hidden}",
            "ffn": f"intermediate {self.ffn}",
            "head_dim": f"head_dim {hd}",
            "q": f"{heads} heads × head_dim {hd}",
            "kv": f"{kv} kv heads × head_dim {hd}",
            "qkv": f"({heads} heads + 2 × {kv} kv heads) × head_dim {hd}",
            "gate_up": f"2 × intermediate {self.ffn}",
        }
        return text[dim]

    def shape(self, role: TensorRole) -> tuple[tuple[int | None, ...], str]:
        """``role``'s expected shape and the sizes it came from."""
        why = ", ".join(dict.fromkeys(self.describe(d) for d in role.shape))
        return tuple(self.value(d) for d in role.shape), why


def _mul(a: int | None, b: int | None) -> int | None:
    return a * b if a is not None and b is not None else None
