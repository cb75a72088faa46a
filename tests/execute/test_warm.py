"""Workers started ahead of their cells are handed out once, and never leak."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from apr_qa.execute.warm import WarmPool
from apr_qa.playbook import load_playbook


def test_pool_starts_one_worker_per_first_cell_and_hands_each_out_once(tmp_path: Path) -> None:
    book = tmp_path / "b.yaml"
    book.write_text(
        "model: {id: m, path: .}\n"
        "test_matrix: {modalities: [run, serve], backends: [gpu, cpu], formats: [gguf, apr]}\n"
    )
    pool = WarmPool.for_playbooks([load_playbook(book)], workers=3)
    try:
        first = pool.take("llama_cpp")  # only the gguf x run cpu cell can use a warm worker
        second = pool.take("llama_cpp")
        assert first.pid != second.pid  # the second one is fresh, not the same worker twice
        os.kill(second.pid, signal.SIGKILL)
        second.kill()
        assert not second.alive()
        first.close()
        second.close()
    finally:
        pool.close()


def test_a_dead_warm_worker_is_replaced(tmp_path: Path) -> None:
    book = tmp_path / "b.yaml"
    book.write_text(
        "model: {id: m, path: .}\ntest_matrix: {modalities: [run], formats: [safetensors]}\n"
    )
    pool = WarmPool.for_playbooks([load_playbook(book)], workers=1)
    (warm,) = pool._pool["transformers"]
    warm.kill()
    fresh = pool.take("transformers")
    try:
        assert fresh is not warm and fresh.alive()
    finally:
        fresh.close()
        pool.close()


def test_no_warm_workers_when_no_cpu_cell_runs(tmp_path: Path) -> None:
    book = tmp_path / "b.yaml"
    book.write_text("model: {id: m, path: .}\ntest_matrix: {backends: [gpu]}\n")
    pool = WarmPool.for_playbooks([load_playbook(book)], workers=2)
    assert dict(pool._pool) == {}
    pool.close()


def test_no_worker_is_started_for_a_format_a_command_runtime_takes_over(tmp_path: Path) -> None:
    book = tmp_path / "b.yaml"
    book.write_text(
        "model: {id: m, path: .}\n"
        "test_matrix: {modalities: [run], formats: [gguf, safetensors]}\n"
        "runtimes: {gguf: {command: [llama-cli, -m, '{model}', -f, '{prompt_file}']}}\n"
    )
    pool = WarmPool.for_playbooks([load_playbook(book)], workers=2)
    try:
        # Of the two cells only safetensors runs in a worker: one started, for transformers.
        assert {k: len(v) for k, v in pool._pool.items()} == {"transformers": 1}
    finally:
        pool.close()
