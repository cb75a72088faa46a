"""Benchmark: plan a synthetic set of 100 model playbooks totalling 1.8M tests.

Each playbook is 3 formats x 2 backends x 3 modalities x 1,000 scenarios =
18,000 tests; 100 of them make 1,800,000. (The seed README's "100 models x 100
scenarios = 1.8M" is off by ten: that product is 180,000.)

Each measurement runs in a fresh interpreter so imports and peak RSS are the
plan's own. Targets: under 2 s and under 500 MB to load, validate and plan.

    python bench/plan_scale.py [--models 100] [--scenarios 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PLAYBOOK = """\
name: synthetic-{i:03d}
model:
  hf_repo: "org/synthetic-model-{i:03d}"
  formats: [gguf, safetensors, apr]
  quantizations: [q4_k_m]
test_matrix:
  modalities: [run, chat, serve]
  backends: [cpu, gpu]
  scenario_count: {scenarios}
  seed: {i}
scenarios:
  - name: arithmetic_basic
    prompt: "What is 2 + 2?"
    oracle: arithmetic
    expected: 4
"""

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    t0 = time.perf_counter()
    from apr_qa.playbook import load_playbook
    from apr_qa.plan import build_plan
    t_import = time.perf_counter()
    paths = sorted(Path(sys.argv[1]).glob("*.yaml"))
    books = [load_playbook(p) for p in paths]
    t_load = time.perf_counter()
    plan = build_plan(books)
    tests = plan.test_count
    t_plan = time.perf_counter()
    enumerated = 0
    if sys.argv[2] == "enumerate":
        for cell in plan.cells:
            for _ in cell.scenarios():
                enumerated += 1
    t_enum = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"playbooks": len(books), "cells": len(plan.cells), "tests": tests,
                      "enumerated": enumerated, "import_s": t_import - t0,
                      "load_s": t_load - t_import, "plan_s": t_plan - t_load,
                      "enumerate_s": t_enum - t_plan, "total_s": t_enum - t0, "peak_rss_mb": rss}))
    """
)


def run(directory: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(directory), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--scenarios", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for i in range(args.models):
            (directory / f"m{i:03d}.yaml").write_text(
                PLAYBOOK.format(i=i, scenarios=args.scenarios)
            )
        plans = [run(directory, "count") for _ in range(args.repeat)]
        enums = [run(directory, "enumerate") for _ in range(args.repeat)]
    best = min(plans, key=lambda r: r["total_s"])
    best_enum = min(enums, key=lambda r: r["total_s"])
    print(
        f"playbooks {best['playbooks']:.0f}, cells {best['cells']:,.0f}, tests {best['tests']:,.0f}"
    )
    print("                         import    load+validate   plan    enumerate   total   peak RSS")
    for label, r in (("plan (count)", best), ("plan + enumerate all", best_enum)):
        print(
            f"{label:<22} {r['import_s']:8.3f}s {r['load_s']:12.3f}s {r['plan_s']:7.3f}s "
            f"{r['enumerate_s']:9.3f}s {r['total_s']:7.3f}s {r['peak_rss_mb']:7.0f} MB"
        )
    ok = best["tests"] >= 1_800_000 and best["total_s"] < 2.0 and best["peak_rss_mb"] < 500
    print(f"target (<2 s, <500 MB for 1.8M tests): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
