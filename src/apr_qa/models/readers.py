"""A uniform, streaming view over a model's weights, whatever their format.

``open_model(path)`` returns a :class:`ModelReader` for a safetensors checkpoint
(a directory, sharded or not, or one ``.safetensors`` file) or a GGUF file. Both
give the same things: a ``config`` with Hugging Face key names, the format's
metadata, the tensor table without touching data, and the tensors as float32
numpy arrays in Hugging Face orientation, one at a time.

Memory: ``iter_tensors`` reads each tensor's bytes with a plain file read (no
memory map whose touched pages would stay resident and count towards the RSS
until the map is closed), converts it, and keeps no reference once yielded. A
loop that drops each array before the next one thus holds one stored tensor and
its float32 copy at most; ``bench/stream_memory.py`` measures this.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from apr_qa.errors import UsageError

__all__ = ["Format", "ModelReader", "TensorInfo", "open_model"]

Format = Literal["safetensors", "gguf"]

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's table entry; reading it touches no tensor data.

    ``shape`` is in Hugging Face orientation (GGUF lists dimensions reversed).
    ``dtype`` is the stored type in lower case: ``f32``, ``bf16``, ``q4_k``, ...
    ``nbytes`` is the stored size on disk.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


class ModelReader(abc.ABC):
    """Streaming access to one model's weights (see the module docstring)."""

    format: Format
    path: Path

    @property
    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Model configuration with Hugging Face key names (``hidden_size``, ...)."""

    @property
    @abc.abstractmethod
    def metadata(self) -> dict[str, Any]:
        """Format metadata: GGUF key/values, or the safetensors ``__metadata__``."""

    @property
    @abc.abstractmethod
    def quantization(self) -> str:
        """Stored precision: GGUF file type (``q4_k_m``) or main safetensors dtype (``bf16``)."""

    @abc.abstractmethod
    def tensor_infos(self) -> list[TensorInfo]:
        """Every tensor's name, shape, dtype and size, in file order; reads no data."""

    @abc.abstractmethod
    def _load(self, info: TensorInfo) -> npt.NDArray[np.float32]:
        """One tensor's data as float32 in Hugging Face orientation."""

    def iter_tensors(self) -> Iterator[tuple[TensorInfo, npt.NDArray[np.float32]]]:
        """Yield ``(info, array)`` one tensor at a time, in file order.

        Drop each array before asking for the next to keep peak memory at one
        tensor plus its float32 copy.
        """
        for info in self.tensor_infos():
            yield info, self._load(info)

    def read_tensor(self, name: str) -> npt.NDArray[np.float32]:
        """One tensor by name, as float32 in Hugging Face orientation."""
        info = self._info_by_name.get(name)
        if info is None:
            raise UsageError(f"{self.path}: no tensor named {name!r}")
        return self._load(info)

    @functools.cached_property
    def _info_by_name(self) -> Mapping[str, TensorInfo]:
        return {info.name: info for info in self.tensor_infos()}

    def close(self) -> None:  # noqa: B027 - optional hook, most readers hold no handle
        """Release any open handle."""

    def __enter__(self) -> ModelReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_model(path: str | Path) -> ModelReader:
    """Open a safetensors checkpoint (directory or file) or a GGUF file.

    The format is decided by content (GGUF magic), then by name. Raises
    ``UsageError`` naming the file for anything unreadable.
    """
    # Imported here: the concrete readers import this module's base types.
    from apr_qa.models.readers_gguf import GGUFModelReader
    from apr_qa.models.readers_safetensors import SafetensorsModelReader

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file or directory")
    if p.is_dir():
        return SafetensorsModelReader(p)
    head = _read_head(p, len(GGUF_MAGIC))
    if head == GGUF_MAGIC or p.suffix.lower() == ".gguf":
        return GGUFModelReader(p)
    if p.suffix.lower() == ".safetensors" or p.name.endswith(".safetensors.index.json"):
        return SafetensorsModelReader(p)
    raise UsageError(f"{p}: not a model file (expected a directory, .safetensors or .gguf)")


def _read_head(path: Path, n: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from e
