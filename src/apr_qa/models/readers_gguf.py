"""Streaming reader for GGUF files, through gguf-py's ``GGUFReader``.

The file's layout is walked once with bounds checks before ``GGUFReader`` sees
it: gguf-py trusts the counts it reads, so a corrupt array length would make it
loop for ever, and truncated tensor data would surface as a reshape error deep
inside it. After the walk, every failure is a one-line ``UsageError`` naming the
file. Tensor data is read by plain file reads (see ``readers``) and dequantized
with ``gguf.quants.dequantize``; GGUF lists dimensions innermost first, so
shapes are reversed into Hugging Face orientation.
"""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from apr_qa.errors import UsageError
from apr_qa.models.config import GGUF_KEYS
from apr_qa.models.readers import GGUF_MAGIC, ModelReader, TensorInfo

__all__ = ["GGUFModelReader", "file_type_name"]

_SUPPORTED_VERSIONS = (2, 3)
_MAX_DIMS = 8
_MAX_NESTING = 4
# GGUFValueType -> size in bytes, for the fixed-size scalar types.
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4


@dataclass(frozen=True)
class _Tensor:
    info: TensorInfo
    qtype: int
    offset: int


class _Cursor:
    """Bounds-checked walk over a GGUF header."""

    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf = buf
        self.path = path
        self.pos = 0

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > len(self.buf):
            raise UsageError(f"{self.path}: GGUF header truncated or corrupt at byte {start}")
        self.pos += n
        return start

    def uint(self, size: int) -> int:
        start = self.take(size)
        return int.from_bytes(self.buf[start : start + size], "little")

    def string(self) -> str:
        n = self.uint(8)
        start = self.take(n)
        try:
            return self.buf[start : start + n].decode("utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"{self.path}: GGUF string at byte {start} is not UTF-8") from e

    def skip_value(self, vtype: int, depth: int = 0) -> None:
        if vtype in _SCALAR_SIZES:
            self.take(_SCALAR_SIZES[vtype])
        elif vtype == _STRING:
            self.take(self.uint(8))
        elif vtype == _ARRAY and depth < _MAX_NESTING:
            itype, count = self.uint(4), self.uint(8)
            if itype in _SCALAR_SIZES:
                self.take(count * _SCALAR_SIZES[itype])
            else:
                # Each element consumes at least 8 bytes or raises, so this loop
                # is bounded by the file size whatever ``count`` claims.
                for _ in range(count):
                    self.skip_value(itype, depth + 1)
        else:
            raise UsageError(f"{self.path}: GGUF value of unknown type {vtype} at byte {self.pos}")


def _walk(path: Path) -> list[_Tensor]:
    """Check the whole layout; return the tensor table."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    size = path.stat().st_size
    if size < 4:
        raise UsageError(f"{path}: not a GGUF file (only {size} bytes)")
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != GGUF_MAGIC:
            raise UsageError(f"{path}: not a GGUF file (bad magic {bytes(buf[:4])!r})")
        cur = _Cursor(buf, path)
        cur.take(4)
        version = cur.uint(4)
        if version not in _SUPPORTED_VERSIONS:
            raise UsageError(f"{path}: unsupported GGUF version {version}")
        n_tensors, n_kv = cur.uint(8), cur.uint(8)
        alignment = 32
        for _ in range(n_kv):
            key = cur.string()
            vtype = cur.uint(4)
            if key == "general.alignment" and vtype == _UINT32:
                alignment = cur.uint(4)
            else:
                cur.skip_value(vtype)
        if alignment <= 0 or alignment & (alignment - 1):
            raise UsageError(f"{path}: GGUF alignment {alignment} is not a power of two")
        raw: list[tuple[str, list[int], int, int]] = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.uint(4)
            if n_dims > _MAX_DIMS:
                raise UsageError(f"{path}: GGUF tensor {name!r} claims {n_dims} dimensions")
            dims = [cur.uint(8) for _ in range(n_dims)]
            raw.append((name, dims, cur.uint(4), cur.uint(8)))
        data_start = -(-cur.pos // alignment) * alignment
    tensors = []
    for name, dims, qtype, offset in raw:
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
            type_name = GGMLQuantizationType(qtype).name.lower()
        except (ValueError, KeyError) as e:
            raise UsageError(f"{path}: GGUF tensor {name!r} has unknown type {qtype}") from e
        numel = math.prod(dims)  # Python ints: a corrupt dimension cannot wrap around
        nbytes = numel * type_size // block
        end = data_start + offset + nbytes
        if end > size:
            raise UsageError(
                f"{path}: GGUF tensor data truncated: {name!r} ends at byte {end}, "
                f"the file has {size}"
            )
        info = TensorInfo(name=name, shape=tuple(reversed(dims)), dtype=type_name, nbytes=nbytes)
        tensors.append(_Tensor(info=info, qtype=qtype, offset=data_start + offset))
    return tensors


def _read_metadata(path: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
        return {
            key: field.contents()
            for key, field in reader.fields.items()
            if not key.startswith("GGUF.")
        }
    # The layout was already walked; anything gguf-py still rejects is a corrupt
    # file, and its own exception types are not a documented contract.
    except Exception as e:
        raise UsageError(f"{path}: unreadable GGUF ({type(e).__name__}: {e})") from e


def file_type_name(file_type: int) -> str:
    """``general.file_type`` as a quantization name: 15 -> ``q4_k_m``, 0 -> ``f32``."""
    from gguf.constants import LlamaFileType

    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return f"file_type_{file_type}"
    return name.removeprefix("ALL_").removeprefix("MOSTLY_").lower()


class GGUFModelReader(ModelReader):
    """One GGUF file. The gguf-py reader is dropped after the header is read, so
    no memory map stays open."""

    format = "gguf"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._tensors = _walk(path)
        except OSError as e:
            raise UsageError(f"{path}: cannot read: {e.strerror}") from e
        self._metadata = _read_metadata(path)
        self._by_name = {t.info.name: t for t in self._tensors}

    @property
    def metadata(self) -> dict[str, Any]:
        """GGUF key/values decoded to Python values (``GGUF.*`` pseudo-keys left out)."""
        return self._metadata

    @property
    def config(self) -> dict[str, Any]:
        """GGUF metadata under Hugging Face config names, where the file has them."""
        arch = self._metadata.get("general.architecture")
        config: dict[str, Any] = {}
        if isinstance(arch, str):
            config["model_type"] = arch
            for hf_key, suffix in GGUF_KEYS.items():
                value = self._metadata.get(f"{arch}.{suffix}")
                if value is not None:
                    config[hf_key] = value
        tokens = self._metadata.get("tokenizer.ggml.tokens")
        if "vocab_size" not in config and isinstance(tokens, list):
            config["vocab_size"] = len(tokens)
        return config

    @property
    def quantization(self) -> str:
        """Quantization from ``general.file_type``, else the type holding most bytes."""
        file_type = self._metadata.get("general.file_type")
        if isinstance(file_type, int):
            return file_type_name(file_type)
        totals: dict[str, int] = {}
        for t in self._tensors:
            if len(t.info.shape) >= 2:
                totals[t.info.dtype] = totals.get(t.info.dtype, 0) + t.info.nbytes
        return max(totals, key=lambda k: totals[k]) if totals else "unknown"

    def tensor_infos(self) -> list[TensorInfo]:
        """Tensors in file order, shapes in Hugging Face orientation."""
        return [t.info for t in self._tensors]

    def _load(self, info: TensorInfo) -> npt.NDArray[np.float32]:
        from gguf.constants import GGMLQuantizationType
        from gguf.quants import dequantize, quant_shape_to_byte_shape

        tensor = self._by_name[info.name]
        qtype = GGMLQuantizationType(tensor.qtype)
        try:
            raw = np.fromfile(self.path, dtype=np.uint8, count=info.nbytes, offset=tensor.offset)
        except OSError as e:
            raise UsageError(f"{self.path}: cannot read tensor {info.name!r}: {e}") from e
        if raw.size != info.nbytes:
            raise UsageError(f"{self.path}: GGUF tensor data truncated: {info.name!r}")
        plain = {
            GGMLQuantizationType.F64: "<f8",
            GGMLQuantizationType.I8: "i1",
            GGMLQuantizationType.I16: "<i2",
            GGMLQuantizationType.I32: "<i4",
            GGMLQuantizationType.I64: "<i8",
        }
        try:
            if qtype in plain:
                out = raw.view(plain[qtype]).astype(np.float32)
            elif qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
                out = dequantize(raw, qtype)
            else:
                shape = quant_shape_to_byte_shape(info.shape or (1,), qtype)
                out = dequantize(raw.reshape(shape), qtype)
        except (NotImplementedError, ValueError) as e:
            raise UsageError(f"{self.path}: tensor {info.name!r}: cannot dequantize: {e}") from e
        return np.asarray(out, dtype=np.float32).reshape(info.shape)
