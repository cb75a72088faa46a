"""The input half of the reference GGUF converter: a Hugging Face checkpoint directory.

Tensors are listed from the safetensors headers (cheap) and read one at a time, both
through the project's one safetensors reader (``readers_safetensors``), so a
conversion holds at most one source tensor (plus its converted copy) in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.models.readers_safetensors import INDEX_NAME, SafetensorsModelReader

__all__ = ["SourceTensor", "checkpoint_dir", "list_tensors", "read_tensor"]


@dataclass(frozen=True)
class SourceTensor:
    """One tensor of the checkpoint, not yet read: where it is and what it looks like.

    ``dtype`` is the stored type as safetensors names it (``BF16``, ``F32``, ...).
    """

    name: str
    file: Path
    shape: tuple[int, ...]
    dtype: str
    reader: SafetensorsModelReader = field(compare=False, repr=False)


def checkpoint_dir(src: Path) -> Path:
    """``src``, once it is known to be a directory (its config is read by
    :class:`apr_qa.models.config.ModelConfig`)."""
    if not src.exists():
        raise EnvironmentProblem(f"{src}: no such checkpoint directory")
    if not src.is_dir():
        raise UsageError(f"{src}: expected a Hugging Face checkpoint directory, got a file")
    return src


def _open(src: Path) -> SafetensorsModelReader:
    if not (src / INDEX_NAME).is_file() and not any(src.glob("*.safetensors")):
        if any(src.glob("*.bin")) or any(src.glob("*.pt")):
            raise UsageError(
                f"{src}: only pickle weights (*.bin/*.pt); convert to safetensors first"
            )
        raise UsageError(f"{src}: no *.safetensors weights")
    return SafetensorsModelReader(src)


def list_tensors(src: Path) -> list[SourceTensor]:
    """Every tensor of the checkpoint, from the safetensors headers only: shard by shard,
    by name within a shard (the order safetensors lists them, which fixes the GGUF's)."""
    reader = _open(src)
    found = [
        SourceTensor(
            info.name, reader.tensor_file(info.name), info.shape, info.dtype.upper(), reader
        )
        for info in reader.tensor_infos()
    ]
    shards = list(dict.fromkeys(t.file for t in found))
    return sorted(found, key=lambda t: (shards.index(t.file), t.name))


def read_tensor(tensor: SourceTensor) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Read one tensor as float32 (exact for f32, f16 and bf16 sources)."""
    if not tensor.dtype.startswith(("F", "BF")):
        raise UsageError(
            f"{tensor.file}: tensor {tensor.name} is {tensor.dtype}, not floating point"
        )
    return tensor.reader.read_tensor(tensor.name)
