"""The reference GGUF converter: a Hugging Face llama-family checkpoint to one GGUF file.

Written with gguf-py (GGUFWriter, the tensor name map, gguf.quants) so that apr-qa
has a converter it understands end to end, to produce fixture GGUFs and to compare
third-party conversions against. Tensors are streamed: the header and tensor table
are written first from shapes alone, then each tensor is read, converted and written
in turn. K-quants are produced by llama.cpp's own quantizer (bundled with
llama-cpp-python) from a lossless intermediate GGUF, since gguf-py cannot quantize
them. DST is only ever replaced whole: everything is written to a temporary file in
DST's folder and renamed at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apr_qa.errors import UsageError
from apr_qa.models.architectures import (
    ARCHITECTURES,
    ATTN_K,
    ATTN_Q,
    EMBED,
    OUTPUT,
    Architecture,
)
from apr_qa.models.config import CONFIG_FILE, ModelConfig
from apr_qa.models.convert_hparams import HParams
from apr_qa.models.convert_kquant import K_QUANTS, SIMPLE_FTYPES, quantize_with_llama_cpp
from apr_qa.models.convert_source import SourceTensor, checkpoint_dir, list_tensors, read_tensor
from apr_qa.models.rotary import permute_qk

__all__ = [
    "SIMPLE_QUANTS",
    "SUPPORTED_ARCHITECTURES",
    "SUPPORTED_QUANTS",
    "ConversionReport",
    "convert",
    "convert_with_report",
]

log = logging.getLogger(__name__)

# The architectures whose hyperparameters this converter writes
# (:mod:`apr_qa.models.convert_hparams`). Names, tensors, the norm offset and the
# rotary rule of each come from the architecture table.
_CONVERTIBLE: Mapping[str, Architecture] = {
    cls: arch
    for arch in (ARCHITECTURES[name] for name in ("llama", "mistral", "qwen2", "gemma2", "phi3"))
    for cls in arch.hf_classes
}
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(_CONVERTIBLE)
"""Hugging Face ``architectures`` values the converter accepts."""

# Tokens llama.cpp's vocabulary loader looks up by text for an architecture (it sets
# their attributes for Phi-3 with unordered_map::at, which throws on a missing one).
_REQUIRED_TOKENS: Mapping[str, tuple[str, ...]] = {
    "phi3": ("<unk>", "<s>", "</s>", "<|endoftext|>"),
}

SIMPLE_QUANTS: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
"""Quantizations written directly with gguf-py."""

SUPPORTED_QUANTS: tuple[str, ...] = SIMPLE_QUANTS + tuple(K_QUANTS)
"""Every ``--quant`` value the converter accepts."""


@dataclass(frozen=True)
class ConversionReport:
    """What a conversion wrote: the file, its tensor types, and every fallback taken."""

    path: Path
    architecture: str
    quant: str
    tokenizer_pre: str | None
    tensor_types: dict[str, str]
    fallbacks: tuple[str, ...]


def convert(src: Path, dst: Path, quant: str) -> Path:
    """Convert Hugging Face checkpoint directory ``src`` to GGUF file ``dst``; return ``dst``."""
    return convert_with_report(src, dst, quant).path


def convert_with_report(src: Path, dst: Path, quant: str) -> ConversionReport:
    """Like :func:`convert`, and say what was written (tensor types, fallbacks)."""
    src, dst = Path(src), Path(dst)
    quant = quant.lower()
    if quant not in SUPPORTED_QUANTS:
        raise UsageError(f"unsupported quant {quant!r}; supported: {', '.join(SUPPORTED_QUANTS)}")
    if dst.is_dir():
        raise UsageError(
            f"{dst}: is a directory; name the GGUF file to write, "
            f"for example {dst / f'{src.name}-{quant}.gguf'}"
        )
    if dst.exists() and not dst.is_file():
        # Replacing a device node or FIFO with the output would be worse than refusing.
        raise UsageError(f"{dst}: is a special file, not a GGUF file path")
    config = ModelConfig.read(checkpoint_dir(src))
    try:
        arch = _architecture(src, config)
        hparams = HParams.from_config(src, config, arch)
    except (TypeError, ValueError, ArithmeticError) as exc:
        # config.json is input: a value of the wrong type ("architectures": -1,
        # "rope_scaling": 5, "num_key_value_heads": "x") is a bad checkpoint, not a bug.
        raise UsageError(f"{src / 'config.json'}: unusable value: {exc}") from None
    tensors = list_tensors(src)
    from apr_qa.models.gguf_tokenizer import read_tokenizer

    # llama.cpp's gemma2 converter writes add_space_prefix false whatever the model says.
    space_prefix = False if arch.gguf_arch == "gemma2" else None
    tokenizer = read_tokenizer(src, hparams.vocab_size, add_space_prefix=space_prefix)
    missing = [t for t in _REQUIRED_TOKENS.get(arch.gguf_arch, ()) if t not in tokenizer.tokens]
    if missing:
        raise UsageError(
            f"{src}: the vocabulary has no {', '.join(missing)}; llama.cpp's "
            f"{arch.gguf_arch} vocabulary loader looks these up and fails without them"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _temp_path(dst, ".part") as tmp:
        if quant in K_QUANTS:
            inter_quant = _lossless_quant(tensors)
            with _temp_path(dst, f".{inter_quant}.gguf") as inter:
                fallbacks = _write_gguf(inter, src, arch, hparams, tensors, tokenizer, inter_quant)
                quantize_with_llama_cpp(inter, tmp, quant)
        else:
            fallbacks = _write_gguf(tmp, src, arch, hparams, tensors, tokenizer, quant)
        types = _tensor_types(tmp)
        # mkstemp made the file private (0600); DST gets the permissions a plain open would.
        tmp.chmod(0o666 & ~_umask())
        tmp.replace(dst)
    if quant in K_QUANTS:
        fallbacks = _kquant_fallbacks(types, quant)
    if fallbacks:
        log.warning(
            "%s: %d tensor(s) not stored as %s; first: %s", dst, len(fallbacks), quant, fallbacks[0]
        )
    return ConversionReport(dst, arch.gguf_arch, quant, tokenizer.pre, types, tuple(fallbacks))


def _architecture(src: Path, config: ModelConfig) -> Architecture:
    for name in config.architectures:
        if name in _CONVERTIBLE:
            return _CONVERTIBLE[name]
    archs = config.architectures
    named = ", ".join(archs) if archs else f"model_type {config.model_type!r}"
    raise UsageError(
        f"{src / CONFIG_FILE}: unsupported architecture {named}; "
        f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
    )


@dataclass(frozen=True)
class _Planned:
    source: SourceTensor
    name: str
    qtype: Any  # gguf.GGMLQuantizationType


def _plan(
    src: Path, arch: Architecture, hp: HParams, tensors: list[SourceTensor], quant: str
) -> tuple[list[_Planned], list[str]]:
    """Decide each output tensor's GGUF name and type; collect fallbacks."""
    import gguf

    wanted = gguf.GGMLQuantizationType[quant.upper()]
    planned: list[_Planned] = []
    fallbacks: list[str] = []
    for tensor in tensors:
        if tensor.name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed by every runtime from rope_theta
        name = arch.gguf_name(tensor.name)
        if name is None:
            raise UsageError(
                f"{tensor.file}: tensor {tensor.name} has no GGUF name for {arch.gguf_arch}"
            )
        if name == OUTPUT.name("gguf") and hp.tied:
            continue  # tied: llama.cpp reuses token_embd when output.weight is absent
        qtype = wanted
        if len(tensor.shape) < 2:
            # Norms and biases stay f32, as llama.cpp's converter does.
            qtype = gguf.GGMLQuantizationType.F32
        else:
            block = gguf.GGML_QUANT_SIZES[wanted][0]
            if tensor.shape[-1] % block:
                qtype = gguf.GGMLQuantizationType.F16
                fallbacks.append(
                    f"{name}: row length {tensor.shape[-1]} not a multiple of {block}; "
                    f"{quant} -> f16"
                )
        planned.append(_Planned(tensor, name, qtype))
    _check_shapes(src, hp, planned)
    return planned, fallbacks


def _check_shapes(src: Path, hp: HParams, planned: list[_Planned]) -> None:
    shapes = {p.name: p.source.shape for p in planned}
    expected = {EMBED.name("gguf"): (hp.vocab_size, hp.hidden)}
    if not hp.tied:
        expected[OUTPUT.name("gguf")] = (hp.vocab_size, hp.hidden)
    for name, shape in expected.items():
        if name not in shapes:
            raise UsageError(f"{src}: checkpoint has no tensor for {name}")
        if shapes[name] != shape:
            raise UsageError(
                f"{src}: {name} has shape {list(shapes[name])}, config.json implies {list(shape)}"
            )


def _write_gguf(
    path: Path,
    src: Path,
    arch: Architecture,
    hp: HParams,
    tensors: list[SourceTensor],
    tokenizer: Any,
    quant: str,
) -> list[str]:
    import gguf

    planned, fallbacks = _plan(src, arch, hp, tensors, quant)
    writer = gguf.GGUFWriter(str(path), arch.gguf_arch)
    writer.add_name(src.resolve().name)
    writer.add_file_type(_FILE_TYPES[quant])
    if quant not in ("f32", "f16", "bf16"):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    hp.write(writer)
    tokenizer.write(writer)
    for p in planned:
        nbytes = int(np.prod(gguf.quants.quant_shape_to_byte_shape(p.source.shape, p.qtype)))
        writer.add_tensor_info(p.name, p.source.shape, np.dtype(np.float32), nbytes, p.qtype)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for p in planned:
            writer.write_tensor_data(_convert_tensor(p, hp, arch))
    finally:
        writer.close()
    return fallbacks


def _convert_tensor(p: _Planned, hp: HParams, arch: Architecture) -> np.ndarray[Any, Any]:
    import gguf

    data = read_tensor(p.source)
    permute = arch.gguf_permutes_qk
    offset = arch.norm_offset
    if offset and arch.is_norm("safetensors", p.source.name):
        # Gemma stores scale - 1 (its RMSNorm computes x * (1 + w)); GGUF stores the scale.
        data = data + np.asarray(offset, dtype=data.dtype)
    elif permute and f".{ATTN_Q.gguf}." in p.name:
        data = permute_qk(data, hp.heads)
    elif permute and f".{ATTN_K.gguf}." in p.name:
        data = permute_qk(data, hp.kv_heads)
    return np.ascontiguousarray(gguf.quants.quantize(data, p.qtype))


def _lossless_quant(tensors: list[SourceTensor]) -> str:
    """The intermediate type for K-quants: the widest source float, so nothing is lost."""
    dtypes = {t.dtype for t in tensors}
    if dtypes <= {"BF16"}:
        return "bf16"
    if dtypes <= {"F16"}:
        return "f16"
    return "f32"


def _tensor_types(path: Path) -> dict[str, str]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {t.name: t.tensor_type.name for t in reader.tensors}


def _kquant_fallbacks(types: Mapping[str, str], quant: str) -> list[str]:
    # A K-quant mix legitimately uses several K types; anything else on a matrix means
    # llama.cpp fell back (row length not a multiple of 256).
    return [
        f"{name}: llama.cpp quantizer fell back to {qtype} (requested {quant})"
        for name, qtype in types.items()
        if not qtype.endswith("_K") and qtype != "F32"
    ]


# general.file_type (gguf.LlamaFileType) of each simple quant.
_FILE_TYPES: Mapping[str, int] = {**SIMPLE_FTYPES, "bf16": 32}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _temp_path(dst: Path, suffix: str) -> Iterator[Path]:
    """A temporary file next to ``dst`` (same filesystem, so the rename is atomic)."""
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=suffix, dir=dst.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
