"""Workers started ahead of their cells, so runtime imports overlap our preparation.

Starting a worker costs an interpreter and the runtime's imports (llama.cpp:
0.3 s, torch + transformers: 2–3 s). The command line starts the first ones as
soon as the playbooks are loaded; cells take them when they start.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence

from apr_qa.backends.threads import per_worker, worker_env
from apr_qa.execute.client import WorkerClient
from apr_qa.playbook.model import Playbook

__all__ = ["BACKEND_OF_FORMAT", "WarmPool"]

BACKEND_OF_FORMAT = {"safetensors": "transformers", "gguf": "llama_cpp"}


class WarmPool:
    """Started workers by backend kind; thread-safe.

    ``threads``: how many threads each worker's runtimes may use (None: their own
    default), from :func:`apr_qa.backends.threads.per_worker`.
    """

    def __init__(self, threads: int | None = None) -> None:
        self._lock = threading.Lock()
        self._pool: dict[str, list[WorkerClient]] = defaultdict(list)
        self.threads = threads

    def _start(self, kind: str) -> WorkerClient:
        return WorkerClient(worker_env(self.threads), warm=kind)

    @classmethod
    def for_playbooks(
        cls, playbooks: Sequence[Playbook], workers: int, backends: Sequence[str] | None = None
    ) -> WarmPool:
        """Start up to ``workers`` workers for the first cpu cells the playbooks will run."""
        pool = cls(per_worker(workers))
        kinds: list[str] = []
        for book in playbooks:
            m = book.matrix
            if "cpu" not in m.backends or (backends and "cpu" not in backends):
                continue
            runnable = [x for x in m.modalities if x != "serve"]
            # A format with a command runtime needs no worker (runtimes.<format>).
            commands = book.sections.get("runtimes") or {}
            kinds += [
                BACKEND_OF_FORMAT[f]
                for f in m.formats
                if f in BACKEND_OF_FORMAT and f not in commands
            ] * len(runnable)
        for kind in kinds[: max(1, workers)]:
            pool._pool[kind].append(pool._start(kind))
        return pool

    def take(self, kind: str) -> WorkerClient:
        """A started worker for a backend kind: a warm one if there is one."""
        with self._lock:
            clients = self._pool.get(kind) or []
            while clients:
                client = clients.pop(0)
                if client.alive():
                    return client
                client.close()
        return self._start(kind)

    def close(self) -> None:
        """Stop the workers nobody took."""
        with self._lock:
            clients = [c for pool in self._pool.values() for c in pool]
            self._pool.clear()
        for client in clients:
            client.close()
