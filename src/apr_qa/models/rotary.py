"""The rotary Q/K row permutation between Hugging Face and llama.cpp.

Hugging Face llama-style checkpoints order each head's q/k rows "half-split": the
first half of the head's rows rotate with the second half. llama.cpp's llama
graph rotates adjacent pairs, so its converter interleaves the two halves. Which
architectures need it is in :mod:`apr_qa.models.architectures`
(``Architecture.gguf_permutes_qk``); this module only moves rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["move_fused_qk", "permute_qk", "unpermute_qk"]


def _swap(data: np.ndarray[Any, Any], heads: int, inner: tuple[int, int]) -> np.ndarray[Any, Any]:
    shape = data.shape
    if heads <= 0 or shape[0] % heads or (shape[0] // heads) % 2:
        raise ValueError(f"{shape[0]} rows cannot be split into {heads} heads of even size")
    return data.reshape(heads, *inner, *shape[1:]).swapaxes(1, 2).reshape(shape).copy()


def permute_qk(data: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """Rows of a q or k projection (weight or bias) from Hugging Face's half-split
    order to llama.cpp's interleaved one; ``heads`` is the tensor's head count."""
    return _swap(data, heads, (2, data.shape[0] // heads // 2))


def unpermute_qk(data: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """The inverse of :func:`permute_qk`: llama.cpp's interleaved rows back to
    Hugging Face's half-split order."""
    return _swap(data, heads, (data.shape[0] // heads // 2, 2))


def move_fused_qk(
    data: np.ndarray[Any, Any],
    heads: int,
    kv_heads: int,
    move: Callable[[np.ndarray[Any, Any], int], np.ndarray[Any, Any]],
) -> np.ndarray[Any, Any]:
    """Apply ``move`` (:func:`permute_qk` or :func:`unpermute_qk`) to the q and k
    parts of a fused qkv projection (phi3: rows in the order q, k, v); v stays."""
    q_rows = data.shape[0] * heads // (heads + 2 * kv_heads)
    q, k, v = np.split(data, [q_rows, q_rows + q_rows * kv_heads // heads])
    return np.concatenate([move(q, heads), move(k, kv_heads), v])
