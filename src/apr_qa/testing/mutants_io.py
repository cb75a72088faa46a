"""Byte-level plumbing for the mutants: copy a checkpoint, rewrite safetensors and GGUF.

Safetensors is read through the product's one reader (``readers_safetensors``, as
stored bytes) and written here by hand (an 8-byte header length, a JSON header, raw
little-endian data) rather than through ``safetensors.torch``: the mutants then need
no torch, and bf16 checkpoints round-trip through numpy. GGUF copies follow gguf-py's
own ``gguf_new_metadata`` script: every key/value copied (or changed, or dropped),
every tensor copied as stored (or edited, or dropped).
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from apr_qa.errors import UsageError
from apr_qa.models.config import CONFIG_FILE
from apr_qa.models.config import read_config_json as read_config
from apr_qa.models.readers_safetensors import SafetensorsModelReader

__all__ = [
    "GGUFTensorEdit",
    "StTensor",
    "copy_checkpoint",
    "fixture_gguf",
    "read_config",
    "read_safetensors",
    "rewrite_gguf",
    "write_config",
    "write_safetensors",
]

WEIGHTS = "model.safetensors"
_FLOAT_DTYPES = ("F32", "F16", "BF16")


@dataclass
class StTensor:
    """One safetensors tensor as stored: dtype name, shape, raw bytes."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes

    def to_f32(self) -> npt.NDArray[np.float32]:
        """The values as a float32 array (a copy, safe to edit)."""
        if self.dtype == "F32":
            return np.frombuffer(self.data, "<f4").reshape(self.shape).copy()
        if self.dtype == "F16":
            return np.frombuffer(self.data, "<f2").astype(np.float32).reshape(self.shape)
        if self.dtype == "BF16":
            wide = np.frombuffer(self.data, "<u2").astype(np.uint32) << 16
            return wide.view(np.float32).reshape(self.shape).copy()
        raise UsageError(f"tensor dtype {self.dtype} is not a float type {_FLOAT_DTYPES}")

    @classmethod
    def from_f32(cls, values: npt.NDArray[np.float32], dtype: str) -> StTensor:
        """Store ``values`` in ``dtype`` (round to nearest even for bf16)."""
        values = np.ascontiguousarray(values, dtype=np.float32)
        shape = tuple(int(d) for d in values.shape)
        if dtype == "F32":
            return cls(dtype, shape, values.astype("<f4").tobytes())
        if dtype == "F16":
            return cls(dtype, shape, values.astype("<f2").tobytes())
        if dtype == "BF16":
            bits = values.view(np.uint32).astype(np.uint64)
            rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
            # NaN must stay NaN: rounding its payload could carry into the exponent.
            rounded = np.where(np.isnan(values), 0x7FC0, rounded)
            return cls(dtype, shape, rounded.astype("<u2").tobytes())
        raise UsageError(f"tensor dtype {dtype} is not a float type {_FLOAT_DTYPES}")


def read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, StTensor]]:
    """The ``__metadata__`` and every tensor of one safetensors file, in file order.

    Read with the product's own reader, so a header it rejects is rejected here too.
    """
    reader = SafetensorsModelReader(path)
    tensors = {
        info.name: StTensor(info.dtype.upper(), info.shape, reader.read_stored(info.name))
        for info in reader.tensor_infos()
    }
    return reader.metadata, tensors


def write_safetensors(
    path: Path, tensors: Mapping[str, StTensor], metadata: dict[str, str]
) -> None:
    """Write tensors (in the given order) and metadata as one safetensors file."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, t in tensors.items():
        header[name] = {
            "dtype": t.dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(t.data)],
        }
        offset += len(t.data)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format pads the header to 8 bytes
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for t in tensors.values():
            f.write(t.data)


def copy_checkpoint(src: Path, dst: Path) -> Path:
    """Copy a fixture's Hugging Face files (not its GGUFs) into a fresh ``dst``."""
    if not (src / WEIGHTS).is_file():
        raise UsageError(f"{src / WEIGHTS}: mutants need a single-file safetensors checkpoint")
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for item in sorted(src.iterdir()):
        if item.is_file() and item.suffix.lower() != ".gguf":
            shutil.copy2(item, dst / item.name)
    return dst


def write_config(checkpoint: Path, config: Mapping[str, Any]) -> None:
    """Replace a checkpoint's config.json."""
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    (checkpoint / CONFIG_FILE).write_text(text, encoding="utf-8")


def fixture_gguf(fixture: Path, quant: str, scratch: Path) -> Path:
    """The fixture's committed ``*-<quant>.gguf``, or one converted into ``scratch``."""
    matches = sorted(p for p in fixture.glob("*.gguf") if p.stem.lower().endswith(f"-{quant}"))
    if matches:
        return matches[0]
    from apr_qa.models.convert import convert

    scratch.mkdir(parents=True, exist_ok=True)
    return convert(fixture, scratch / f"{fixture.name}-{quant}.gguf", quant)


GGUFTensorEdit = Callable[[str, "np.ndarray[Any, Any]", Any], "np.ndarray[Any, Any] | None"]
"""``(name, stored data, GGMLQuantizationType) -> new stored data, or None to drop``.

Stored data is what gguf's reader gives: float arrays in Hugging Face orientation
for F32/F16, raw uint8 blocks (rows x bytes) for quantized types; the type is kept.
"""


def rewrite_gguf(
    src: Path,
    dst: Path,
    *,
    set_keys: Mapping[str, Any] | None = None,
    drop_keys: tuple[str, ...] = (),
    edit: GGUFTensorEdit | None = None,
) -> Path:
    """Copy GGUF ``src`` to ``dst`` with keys changed or dropped and tensors edited."""
    import gguf

    set_keys = dict(set_keys or {})
    reader = gguf.GGUFReader(str(src))
    arch_field = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    if arch_field is None:
        raise UsageError(f"{src}: GGUF has no general.architecture")
    writer = gguf.GGUFWriter(str(dst), str(arch_field.contents()))
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        if field.name in drop_keys:
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        value = set_keys.pop(field.name, field.contents())
        writer.add_key_value(field.name, value, kind, sub_type=sub)
    if set_keys:
        raise UsageError(f"{src}: cannot set absent keys {sorted(set_keys)}")
    kept: list[tuple[str, np.ndarray[Any, Any], Any]] = []
    for tensor in reader.tensors:
        data = np.asarray(tensor.data)
        new = data if edit is None else edit(tensor.name, data, tensor.tensor_type)
        if new is not None:
            kept.append((tensor.name, np.ascontiguousarray(new), tensor.tensor_type))
    for name, data, qtype in kept:
        writer.add_tensor_info(name, data.shape, data.dtype, data.nbytes, raw_dtype=qtype)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for _, data, _ in kept:
            writer.write_tensor_data(data)
    finally:
        writer.close()
    return dst
