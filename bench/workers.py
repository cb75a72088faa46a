"""Benchmark: one worker against several, on the same playbook, side by side.

Writes ``apr-qa init``'s default playbook for a fixture once, then runs it with
``--workers 1`` and ``--workers N`` alternately, each in a fresh process, and
prints the best wall time of each and their ratio. With several workers each
gets cores // workers threads (apr_qa.backends.threads); without that split,
two workers on two cores were 2.5 times slower than one.

    python bench/workers.py [--fixture tiny-llama] [--workers 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


CLI = [sys.executable, "-c", "from apr_qa.cli import main; main()"]


def _apr_qa(*args: str) -> None:
    subprocess.run([*CLI, "-q", *args], check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fixture", default="tiny-llama")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "book.yaml"
        model = ROOT / "src/apr_qa/fixtures/models" / args.fixture
        _apr_qa("init", str(model), "-o", str(book))
        best: dict[int, float] = {}
        for i in range(args.repeat):
            for workers in (1, args.workers):
                out = Path(tmp) / f"out-{workers}-{i}"
                started = time.perf_counter()
                subprocess.run(
                    [*CLI, "-q", "run", str(book), "--output", str(out),
                     "--workers", str(workers)],
                    cwd=ROOT, check=False, stdout=subprocess.DEVNULL,
                )  # fmt: skip
                took = time.perf_counter() - started
                best[workers] = min(best.get(workers, took), took)
                print(f"run {i}: --workers {workers}: {took:.1f} s", flush=True)
    one, many = best[1], best[args.workers]
    print(
        f"best: 1 worker {one:.1f} s, {args.workers} workers {many:.1f} s, ratio {many / one:.2f}"
    )


if __name__ == "__main__":
    main()
