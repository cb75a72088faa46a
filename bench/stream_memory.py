"""Peak memory of iterating every tensor of a large checkpoint with apr-qa's readers.

Writes synthetic checkpoints (default: 8 tensors of 256 MB float32 = 2 GiB) into
a temporary directory, deleted afterwards, as safetensors (f32, bf16) and GGUF
(f32, f16), streaming them to disk one tensor at a time. Each is then read by
``apr_qa.models.readers.open_model(...).iter_tensors()`` in a fresh child
process, which reports its peak RSS (``VmHWM``). The bound is
``2 x largest tensor (as float32) + 400 MB``, independent of the model size.

Usage: python bench/stream_memory.py [--tensors 8] [--tensor-mb 256] [--dir DIR]
Exit status: 0 when every case is within its bound, 1 otherwise, 2 on bad setup.
Not a timed test: run it by hand, never from pytest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MB = 1024 * 1024
OVERHEAD = 400 * MB
ROWS_PER_CHUNK = 1024


@dataclass(frozen=True)
class Case:
    name: str
    fmt: str  # "safetensors" | "gguf"
    dtype: str  # "f32" | "bf16" | "f16"


CASES = [
    Case("safetensors f32", "safetensors", "f32"),
    Case("safetensors bf16", "safetensors", "bf16"),
    Case("gguf f32", "gguf", "f32"),
    Case("gguf f16", "gguf", "f16"),
]
_ITEMSIZE = {"f32": 4, "bf16": 2, "f16": 2}


def _value(i: int) -> float:
    # Exactly representable in bf16 and f16, so the child can check what it read.
    return 0.5 * (i + 1)


def _chunk(value: float, rows: int, cols: int, dtype: str) -> bytes:
    block = np.full((rows, cols), value, dtype=np.float32)
    if dtype == "bf16":
        return (block.view(np.uint32) >> 16).astype("<u2").tobytes()
    if dtype == "f16":
        return block.astype("<f2").tobytes()
    return block.tobytes()


def write_safetensors(path: Path, n: int, rows: int, cols: int, dtype: str) -> None:
    """A safetensors file written one row chunk at a time (never the whole model in memory)."""
    size = rows * cols * _ITEMSIZE[dtype]
    header = {
        f"layers.{i}.weight": {
            "dtype": dtype.upper(),
            "shape": [rows, cols],
            "data_offsets": [i * size, (i + 1) * size],
        }
        for i in range(n)
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for i in range(n):
            for start in range(0, rows, ROWS_PER_CHUNK):
                f.write(_chunk(_value(i), min(ROWS_PER_CHUNK, rows - start), cols, dtype))


def write_gguf(path: Path, n: int, rows: int, cols: int, dtype: str) -> None:
    """A GGUF file through gguf.GGUFWriter, its tensor data streamed one tensor at a time."""
    import gguf

    np_dtype = np.dtype(np.float16 if dtype == "f16" else np.float32)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(n)
    writer.add_embedding_length(cols)
    for i in range(n):
        writer.add_tensor_info(
            f"blk.{i}.ffn_up.weight", (rows, cols), np_dtype, rows * cols * np_dtype.itemsize
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for i in range(n):
        writer.write_tensor_data(np.full((rows, cols), _value(i), dtype=np_dtype))
    writer.close()


def child(path: str) -> None:
    """Iterate every tensor; print peak RSS and what was read as one JSON line."""
    from apr_qa.models.readers import open_model

    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(key)

    baseline = status("VmRSS")
    start = time.perf_counter()
    count = 0
    largest = 0
    with open_model(path) as reader:
        # No enumerate(): it keeps its last result tuple, and with it the previous
        # array, alive while the next one is read.
        for info, array in reader.iter_tensors():
            expected = _value(count)
            if array.shape != info.shape or array[0, 0] != expected or array[-1, -1] != expected:
                raise SystemExit(f"tensor {info.name}: wrong data")
            largest = max(largest, array.nbytes)
            count += 1
            del array
    print(
        json.dumps(
            {
                "baseline": baseline,
                "peak": status("VmHWM"),
                "tensors": count,
                "largest_f32": largest,
                "seconds": time.perf_counter() - start,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=8)
    parser.add_argument("--tensor-mb", type=int, default=256, help="size of one f32 tensor")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0

    cols = 4096
    rows = args.tensor_mb * MB // (4 * cols)
    largest_f32 = rows * cols * 4
    biggest_file = args.tensors * largest_f32
    parent = args.dir or Path(tempfile.gettempdir())
    free = shutil.disk_usage(parent).free
    if free < biggest_file + 1024 * MB:
        print(f"{parent}: {free / MB:.0f} MB free, need {biggest_file / MB + 1024:.0f} MB")
        return 2

    bound = 2 * largest_f32 + OVERHEAD
    rows_out = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="apr-qa-stream-", dir=parent) as tmp:
        for case in CASES:
            suffix = "gguf" if case.fmt == "gguf" else "safetensors"
            path = Path(tmp) / f"model-{case.dtype}.{suffix}"
            writer = write_gguf if case.fmt == "gguf" else write_safetensors
            writer(path, args.tensors, rows, cols, case.dtype)
            size = path.stat().st_size
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
            path.unlink()
            if proc.returncode != 0:
                print(f"{case.name}: child failed:\n{proc.stderr}")
                return 1
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            within = m["peak"] <= bound
            ok &= within
            rows_out.append((case.name, size, m, within))

    header = (
        "| case | file | tensors | largest (f32) | baseline RSS | peak RSS | bound | within | s |"
    )
    print(header)
    print("|" + "---|" * 9)
    for name, size, m, within in rows_out:
        print(
            f"| {name} | {size / MB:,.0f} MB | {m['tensors']} | {m['largest_f32'] / MB:,.0f} MB "
            f"| {m['baseline'] / MB:,.0f} MB | {m['peak'] / MB:,.0f} MB | {bound / MB:,.0f} MB "
            f"| {'yes' if within else 'NO'} | {m['seconds']:.1f} |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
