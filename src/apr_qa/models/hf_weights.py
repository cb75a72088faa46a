"""Any artifact's weights as a Hugging Face state dict, one tensor at a time.

A check that runs a GGUF's weights through the checkpoint's transformers model
class (F-TRACE-DIFF-001: per-layer hidden states) needs them under Hugging
Face's names and layout. For a GGUF, each tensor is dequantized by gguf-py
(:mod:`apr_qa.models.readers`), renamed through the one name table
(:mod:`apr_qa.models.architectures`), its q/k rows put back in Hugging Face's
rotary order where the architecture's converter permutes them, and Gemma's
norms given back their stored ``scale - 1``. The output projection is left out:
hidden states never pass through it, and a tied model's would overwrite its
embedding. A safetensors checkpoint is read as it is.

Nothing here undoes a conversion *bug*: a GGUF whose q/k rows were never
permuted comes out in the wrong order, which is what the check is there to see.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["OUTPUT_NAME", "hf_tensors"]

OUTPUT_NAME = "lm_head.weight"
"""The output projection's Hugging Face name (never yielded)."""


def hf_tensors(
    path: Path, config: Mapping[str, Any]
) -> Iterator[tuple[str, npt.NDArray[np.float32]]]:
    """``(hf_name, float32 array)`` for every tensor of the artifact at ``path`` that
    the name table knows, in file order, for a model of ``config`` (its config.json).

    GGUF tensors the table does not know (``rope_freqs``) are not yielded; the
    caller, which knows the model's parameters, says what is missing.
    """
    from apr_qa.models.architectures import OUTPUT, architecture
    from apr_qa.models.readers import open_model
    from apr_qa.models.rotary import unpermute_qk

    with open_model(path) as reader:
        if reader.format != "gguf":
            for info, values in reader.iter_tensors():
                if info.name != OUTPUT_NAME:
                    yield info.name, values
            return
        arch = architecture(config.get("model_type"))
        heads = int(config.get("num_attention_heads") or 0)
        rotary = {"attn_q": heads, "attn_k": int(config.get("num_key_value_heads") or heads)}
        offset = arch.scale_offset("safetensors") or 0.0
        for info, values in reader.iter_tensors():
            name = arch.hf_name(info.name)
            if name is None or name == OUTPUT.name("safetensors"):
                continue
            role = arch.role_of("gguf", info.name)
            count = rotary.get(role.gguf, 0) if role is not None else 0
            if count and arch.gguf_permutes_qk:
                values = unpermute_qk(values, count)
            if offset and arch.is_norm("gguf", info.name):
                values = values - np.float32(offset)
            yield name, values
