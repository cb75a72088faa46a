"""Benchmark: `apr-qa run` against a plain Python loop over the same prompts.

For each backend (llama.cpp on a GGUF, transformers on safetensors), one cell
of 200 explicit prompts at max_tokens 32, temperature 0:

- apr-qa: ``apr-qa -q run PLAYBOOK`` end to end in a fresh process (imports,
  playbook load, G0 preflight, worker spawn and model load, 200 generations
  judged by oracles, evidence, reports);
- baseline: a fresh ``python -c`` that imports the runtime, loads the model
  once and generates the same prompts with the same parameters.

Both are timed side by side, alternating, best of N; the target is a ratio of
at most 1.10. apr-qa's fixed start-up cost (imports, playbook load, worker
spawn) is measured on its own with a 1-prompt playbook minus one generation.

    python bench/overhead.py [--repeat 3] [--fixture tiny-llama]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PROMPTS = [f"What is {a} + {b}?" for a in range(10) for b in range(10)]
PROMPTS = (PROMPTS * 2)[:200]

BASELINES = {
    "gguf": textwrap.dedent(
        """
        import json, sys
        from llama_cpp import Llama
        prompts = json.loads(sys.argv[2])
        llm = Llama(model_path=sys.argv[1], n_gpu_layers=0, n_ctx=512, seed=0, verbose=False)
        for p in prompts:
            llm.create_completion(p, max_tokens=32, temperature=0.0, seed=0)
        """
    ),
    "safetensors": textwrap.dedent(
        """
        import json, sys, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        prompts = json.loads(sys.argv[2])
        tok = AutoTokenizer.from_pretrained(sys.argv[1], local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(sys.argv[1], local_files_only=True).eval()
        with torch.inference_mode():
            for p in prompts:
                ids = tok(p, return_tensors="pt")
                model.generate(**ids, max_new_tokens=32, do_sample=False, pad_token_id=tok.pad_token_id)
        """
    ),
}


def _playbook(directory: Path, model_dir: Path, fmt: str, quant: str, prompts: list[str]) -> Path:
    path = directory / f"overhead-{fmt}-{len(prompts)}.yaml"
    lines = "\n".join(f"    - {json.dumps(p)}" for p in prompts)
    gguf = f"\n  quantizations: [{quant}]" if fmt == "gguf" else ""
    path.write_text(
        f"name: overhead-{fmt}\nmodel: {{path: {model_dir}}}\n"
        f"test_matrix:\n  modalities: [run]\n  backends: [cpu]\n  formats: [{fmt}]{gguf}\n"
        f"  max_tokens: 32\n  temperature: 0\n  scenario_count: 0\n  prompts:\n{lines}\n"
        "failure_policy: collect-all\n"
    )
    return path


def _timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (
        0,
        1,
    ):  # 1: the tiny model may grade below C; anything else is broken
        raise SystemExit(f"{' '.join(cmd[:6])}... exited {done.returncode}: {done.stderr[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fixture", default="tiny-llama")
    args = parser.parse_args()
    from apr_qa.fixtures import fixture_path

    model_dir = fixture_path(args.fixture)
    gguf = next(iter(sorted(model_dir.glob("*-f16.gguf"))))
    quant = "f16"
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"fixture {args.fixture}; 200 prompts, max_tokens 32, best of {args.repeat}")
        print(f"{'backend':<22}{'apr-qa run':>12}{'plain loop':>12}{'ratio':>8}{'start-up':>10}")
        for fmt, target in (("gguf", str(gguf)), ("safetensors", str(model_dir))):
            book = _playbook(root, model_dir, fmt, quant, PROMPTS)
            one = _playbook(root, model_dir, fmt, quant, PROMPTS[:1])
            run = [
                sys.executable,
                "-m",
                "apr_qa.cli",
                "-q",
                "run",
                "-o",
                str(root / "out"),
                str(book),
            ]
            run_one = [
                sys.executable,
                "-m",
                "apr_qa.cli",
                "-q",
                "run",
                "-o",
                str(root / "o1"),
                str(one),
            ]
            base = [sys.executable, "-c", BASELINES[fmt], target, json.dumps(PROMPTS)]
            base_one = [sys.executable, "-c", BASELINES[fmt], target, json.dumps(PROMPTS[:1])]
            ours, theirs, ours_one, theirs_one = [], [], [], []
            for _ in range(args.repeat):
                ours.append(_timed(run))
                theirs.append(_timed(base))
                ours_one.append(_timed(run_one))
                theirs_one.append(_timed(base_one))
            ratio = min(ours) / min(theirs)
            startup = min(ours_one) - min(theirs_one)
            name = f"{fmt} ({'llama.cpp' if fmt == 'gguf' else 'transformers'})"
            print(
                f"{name:<22}{min(ours):>11.2f}s{min(theirs):>11.2f}s{ratio:>8.3f}{startup:>9.2f}s"
            )
            failed |= ratio > 1.10
    print("target (ratio <= 1.10):", "NOT met" if failed else "met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
