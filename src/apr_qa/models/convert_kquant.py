"""K-quants for the reference converter, through llama.cpp's own quantizer.

gguf-py can dequantize K-quants but not produce them; llama-cpp-python bundles
``llama_model_quantize``, the same code as the ``llama-quantize`` tool, so the
converter writes a lossless GGUF first and hands it to that.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Mapping
from pathlib import Path

from apr_qa.errors import EnvironmentProblem, UsageError

__all__ = ["K_QUANTS", "LLAMA_FTYPES", "SIMPLE_FTYPES", "quantize_with_llama_cpp"]

log = logging.getLogger(__name__)

# --quant name -> llama_ftype (LLAMA_FTYPE_MOSTLY_*, same numbers as gguf.LlamaFileType).
K_QUANTS: Mapping[str, int] = {
    "q2_k": 10,
    "q3_k_s": 11,
    "q3_k_m": 12,
    "q3_k_l": 13,
    "q4_k_s": 14,
    "q4_k_m": 15,
    "q5_k_s": 16,
    "q5_k_m": 17,
    "q6_k": 18,
}

SIMPLE_FTYPES: Mapping[str, int] = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q8_0": 7,
    "q5_0": 8,
    "q5_1": 9,
}
"""The llama_ftype (``general.file_type``) of each type without K-blocks."""

LLAMA_FTYPES: Mapping[str, int] = {**SIMPLE_FTYPES, **K_QUANTS}
"""Every type llama.cpp's quantizer writes from a lossless GGUF (K-quants and the simple ones)."""


def quantize_with_llama_cpp(src_gguf: Path, dst_gguf: Path, quant: str) -> None:
    """Quantize an f32/f16/bf16 GGUF ``src_gguf`` to ``quant`` (:data:`LLAMA_FTYPES`) at ``dst_gguf``."""
    if quant not in LLAMA_FTYPES:
        raise UsageError(f"unsupported quant {quant!r}; supported: {', '.join(LLAMA_FTYPES)}")
    try:
        import llama_cpp
    except ImportError as exc:
        raise EnvironmentProblem(
            f"{dst_gguf}: {quant} needs llama-cpp-python (pip install llama-cpp-python)"
        ) from exc
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPES[quant]
    # llama-cpp-python prints llama.cpp's per-tensor log lines unless its logger's
    # level says otherwise; keep them for our --verbose only.
    native_log = logging.getLogger("llama-cpp-python")
    saved_level = native_log.level
    if not log.isEnabledFor(logging.DEBUG):
        native_log.setLevel(logging.ERROR)
    try:
        rc = llama_cpp.llama_model_quantize(
            str(src_gguf).encode(), str(dst_gguf).encode(), ctypes.byref(params)
        )
    finally:
        native_log.setLevel(saved_level)
    if rc != 0:
        raise EnvironmentProblem(f"{dst_gguf}: llama.cpp quantizer failed for {quant} (rc {rc})")
