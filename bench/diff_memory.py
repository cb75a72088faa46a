"""Peak memory and time of the tensor diff (F-ROSETTA-DIFF) over a large pair.

Writes a synthetic llama-named checkpoint and its GGUF (default: 8 tensors of
256 MB float32 = 2 GiB each side) into a temporary directory, deleted
afterwards, one row chunk at a time. ``apr_qa.checks.tensor_diff.diff_pair``
then compares them in a fresh child process, which reports its peak RSS
(``VmHWM``). The bound is ``2 x largest tensor (as float32) + 400 MB``: the
reference tensor and the GGUF tensor of one pair at a time, whatever the model
size. The GGUF holds every tensor plus a tiny offset, so each comparison really
computes its error (and all are within f32's tolerance is not asked: only memory).

Usage: python bench/diff_memory.py [--tensors 8] [--tensor-mb 256] [--dir DIR]
Exit status: 0 when within the bound, 1 otherwise. Not a timed test: run it by
hand, never from pytest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MB = 1024 * 1024
OVERHEAD = 400 * MB
ROWS_PER_CHUNK = 1024


def _value(i: int) -> float:
    return 0.5 * (i + 1)


def write_checkpoint(folder: Path, n: int, rows: int, cols: int) -> None:
    """config.json and model.safetensors with ``n`` up projections, streamed."""
    folder.mkdir(parents=True)
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "num_hidden_layers": n,
        "hidden_size": cols,
        "intermediate_size": rows,
        "num_attention_heads": 8,
        "vocab_size": 32000,
    }
    (folder / "config.json").write_text(json.dumps(config))
    size = rows * cols * 4
    header = {
        f"model.layers.{i}.mlp.up_proj.weight": {
            "dtype": "F32",
            "shape": [rows, cols],
            "data_offsets": [i * size, (i + 1) * size],
        }
        for i in range(n)
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with (folder / "model.safetensors").open("wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for i in range(n):
            for start in range(0, rows, ROWS_PER_CHUNK):
                chunk = min(ROWS_PER_CHUNK, rows - start)
                f.write(np.full((chunk, cols), _value(i), dtype=np.float32).tobytes())


def write_gguf(path: Path, n: int, rows: int, cols: int) -> None:
    """The GGUF side, f32, each tensor written whole (one at a time)."""
    import gguf

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(n)
    writer.add_embedding_length(cols)
    for i in range(n):
        writer.add_tensor_info(
            f"blk.{i}.ffn_up.weight", (rows, cols), np.dtype(np.float32), rows * cols * 4
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for i in range(n):
        writer.write_tensor_data(np.full((rows, cols), _value(i), dtype=np.float32))
    writer.close()


def child(reference: str, gguf_path: str) -> None:
    """Diff the pair; print peak RSS, tensors compared and seconds as one JSON line."""
    from apr_qa.checks.differential import Pair, Switch
    from apr_qa.checks.finding import Ledger
    from apr_qa.checks.tensor_diff import GATES, diff_pair

    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(key)

    baseline = status("VmRSS")
    start = time.perf_counter()
    ledgers = {g: Ledger(g) for g in GATES}
    rows = diff_pair(
        Pair(Path(reference), Path(gguf_path), "f32"), Switch(True, None, {}, {}), ledgers
    )
    verdicts = {
        g: led.finding(passed="held", skipped="skipped").passed for g, led in ledgers.items()
    }
    print(
        json.dumps(
            {
                "baseline": baseline,
                "peak": status("VmHWM"),
                "tensors": len(rows),
                "verdicts": verdicts,
                "seconds": time.perf_counter() - start,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=8)
    parser.add_argument("--tensor-mb", type=int, default=256, help="size of one f32 tensor")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    cols = 4096
    rows = args.tensor_mb * MB // (cols * 4)
    largest = rows * cols * 4
    tmp = Path(tempfile.mkdtemp(prefix="apr-qa-diff-bench-", dir=args.dir))
    try:
        reference, gguf_path = tmp / "checkpoint", tmp / "model-f32.gguf"
        write_checkpoint(reference, args.tensors, rows, cols)
        write_gguf(gguf_path, args.tensors, rows, cols)
        gb = 2 * args.tensors * largest / 1024**3
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(reference), str(gguf_path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        got = json.loads(out.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bound = 2 * largest + OVERHEAD
    ok = got["peak"] <= bound and got["tensors"] == args.tensors
    print(
        f"tensor diff of {args.tensors} x {largest / MB:.0f} MB per side ({gb:.1f} GB read): "
        f"peak RSS {got['peak'] / MB:.0f} MB (baseline {got['baseline'] / MB:.0f} MB), "
        f"bound {bound / MB:.0f} MB, {got['seconds']:.1f} s ({got['seconds'] / gb:.1f} s/GB), "
        f"{got['tensors']} tensors, verdicts {got['verdicts']} -> {'ok' if ok else 'OVER'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
