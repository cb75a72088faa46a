"""Workers side by side share the cores: each worker's runtimes get cores // workers
threads (torch and BLAS through their variables, llama.cpp through APR_QA_THREADS),
a count the user set wins, and one worker is left to the runtimes' own defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from apr_qa.backends.threads import THREADS_ENV, llama_threads, per_worker, worker_env
from apr_qa.execute.warm import WarmPool
from apr_qa.fixtures import fixture_path


@pytest.mark.parametrize(
    ("workers", "cores", "threads"),
    [(1, 16, None), (0, 16, None), (2, 2, 1), (3, 16, 5), (8, 2, 1), (4, 16, 4)],
)
def test_cores_are_split_between_workers(workers: int, cores: int, threads: int | None) -> None:
    assert per_worker(workers, cores) == threads


def test_the_environment_limits_every_library_unless_the_user_chose() -> None:
    assert worker_env(None) is None
    env = worker_env(2, {"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
        THREADS_ENV: "2",
    }
    chosen = worker_env(2, {"OMP_NUM_THREADS": "6"})
    assert chosen is not None
    assert chosen["OMP_NUM_THREADS"] == "6"
    assert chosen[THREADS_ENV] == "6"


@pytest.mark.parametrize(("value", "threads"), [("3", 3), ("0", None), ("x", None), ("", None)])
def test_llama_threads_reads_only_a_positive_count(value: str, threads: int | None) -> None:
    assert llama_threads({THREADS_ENV: value}) == threads


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_a_pool_for_several_workers_starts_them_with_their_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", THREADS_ENV):
        monkeypatch.delenv(var, raising=False)
    shared, alone = WarmPool(threads=1), WarmPool()
    try:
        worker = shared.take("transformers")
        assert _environ(worker.pid)["OMP_NUM_THREADS"] == "1"
        assert _environ(worker.pid)[THREADS_ENV] == "1"
        worker.close()
        worker = alone.take("transformers")
        assert "OMP_NUM_THREADS" not in _environ(worker.pid)
        worker.close()
    finally:
        shared.close()
        alone.close()


@pytest.mark.slow
def test_llama_cpp_opens_with_the_workers_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from apr_qa.backends.llama_cpp_backend import LlamaCppBackend

    gguf = fixture_path("tiny-llama") / "tiny-llama-f32.gguf"
    for threads in (3, 5):  # neither is llama-cpp-python's default (cores // 2)
        monkeypatch.setenv(THREADS_ENV, str(threads))
        backend = LlamaCppBackend()
        backend.load(gguf, "cpu")
        assert backend._llm.n_threads == threads
        assert backend._llm.n_threads_batch == threads
