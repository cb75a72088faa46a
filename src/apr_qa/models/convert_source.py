"""The input half of the reference GGUF converter: a Hugging Face checkpoint directory.

Tensors are listed from safetensors headers (cheap) and read one at a time, so a
conversion holds at most one source tensor (plus its converted copy) in memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apr_qa.bounded import loads_bounded, read_regular
from apr_qa.errors import EnvironmentProblem, UsageError

__all__ = ["SourceTensor", "list_tensors", "read_config", "read_tensor"]

_INDEX = "model.safetensors.index.json"
# A config.json is a few kilobytes; this bounds a hostile one without refusing a real one.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class SourceTensor:
    """One tensor of the checkpoint, not yet read: where it is and what it looks like."""

    name: str
    file: Path
    shape: tuple[int, ...]
    dtype: str


def read_config(src: Path) -> dict[str, Any]:
    """Read ``config.json`` of checkpoint directory ``src``."""
    if not src.exists():
        raise EnvironmentProblem(f"{src}: no such checkpoint directory")
    if not src.is_dir():
        raise UsageError(f"{src}: expected a Hugging Face checkpoint directory, got a file")
    path = src / "config.json"
    if not path.is_file():
        raise UsageError(f"{path}: missing; not a Hugging Face checkpoint")
    try:
        config = loads_bounded(read_regular(path, MAX_CONFIG_BYTES, "config.json").decode("utf-8"))
    except (OSError, ValueError) as exc:  # JsonOutOfBounds and UnicodeDecodeError included
        raise UsageError(f"{path}: unreadable JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return config


def _weight_files(src: Path) -> list[Path]:
    index = src / _INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise UsageError(f"{index}: not a safetensors index: {exc}") from exc
        files = [src / name for name in dict.fromkeys(weight_map.values())]
        for file in files:
            if not file.is_file():
                raise UsageError(f"{index}: names shard {file.name}, which is missing")
        return files
    files = sorted(src.glob("*.safetensors"))
    if not files:
        if any(src.glob("*.bin")) or any(src.glob("*.pt")):
            raise UsageError(
                f"{src}: only pickle weights (*.bin/*.pt); convert to safetensors first"
            )
        raise UsageError(f"{src}: no *.safetensors weights")
    return files


def list_tensors(src: Path) -> list[SourceTensor]:
    """Every tensor of the checkpoint, in file order, from the safetensors headers only."""
    from safetensors import safe_open

    found: list[SourceTensor] = []
    for file in _weight_files(src):
        try:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    piece = handle.get_slice(name)
                    found.append(
                        SourceTensor(name, file, tuple(piece.get_shape()), str(piece.get_dtype()))
                    )
        except UsageError:
            raise
        except Exception as exc:  # safetensors raises its own error types for bad headers
            raise UsageError(f"{file}: unreadable safetensors file: {exc}") from exc
    return found


def read_tensor(tensor: SourceTensor) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Read one tensor as float32 (exact for f32, f16 and bf16 sources)."""
    import torch
    from safetensors import safe_open

    try:
        with safe_open(str(tensor.file), framework="pt") as handle:
            data = handle.get_tensor(tensor.name)
    except Exception as exc:  # truncated data, vanished file
        raise UsageError(f"{tensor.file}: cannot read tensor {tensor.name}: {exc}") from exc
    if not data.is_floating_point():
        raise UsageError(f"{tensor.file}: tensor {tensor.name} is {data.dtype}, not floating point")
    array: np.ndarray[Any, np.dtype[np.float32]] = data.to(torch.float32).numpy()
    return array
