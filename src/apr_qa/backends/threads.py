"""Cores per worker: workers running side by side share the machine's cores.

torch and llama.cpp each size their thread pools for the whole machine, so two
workers on two cores ran four busy threads on two cores and were slower than
one worker (measured: 138 s against 56 s for ``apr-qa init``'s tiny-llama
playbook). With more than one worker, each gets ``cores // workers`` threads:
torch and the BLAS libraries through their environment variables, llama.cpp
through :data:`THREADS_ENV`. A thread count the user already set wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["THREADS_ENV", "available_cores", "llama_threads", "per_worker", "worker_env"]

THREADS_ENV = "APR_QA_THREADS"
"""Threads a worker's runtimes may use; read by the llama.cpp backend."""

_LIBRARY_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def per_worker(workers: int, cores: int | None = None) -> int | None:
    """Threads for each of ``workers`` side by side; None: one worker, runtimes decide."""
    if workers <= 1:
        return None
    return max(1, (cores if cores is not None else available_cores()) // workers)


def worker_env(threads: int | None, base: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The environment of a worker limited to ``threads`` (None: inherit unchanged)."""
    if threads is None:
        return None
    env = dict(os.environ if base is None else base)
    for var in _LIBRARY_VARS:
        env.setdefault(var, str(threads))
    env[THREADS_ENV] = env.get("OMP_NUM_THREADS", str(threads))
    return env


def llama_threads(env: Mapping[str, str] | None = None) -> int | None:
    """llama.cpp's thread count from :data:`THREADS_ENV` (None: llama-cpp-python's default)."""
    value = (os.environ if env is None else env).get(THREADS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else None
