"""The playbook's ``serve`` section, read once into a typed spec.

``url``: a server already running elsewhere (vLLM, TGI, Ollama); apr-qa never
starts or stops it. ``command``: a command line template (a list, never a
shell string) that starts a server for one artifact, with ``{model}``,
``{host}`` and ``{port}`` filled in. Neither: apr-qa starts its default server
for the artifact's format (docs/gates.md, "Serve"). The API key is read from
the environment variable ``api_key_env`` names, never from the playbook.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_READY_TIMEOUT_S", "ServeSpec", "serve_spec"]

DEFAULT_READY_TIMEOUT_S = 120.0
DEFAULT_CONCURRENCY = 10
DEFAULT_MAX_TOKENS_CAP = 256
DEFAULT_STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class ServeSpec:
    """How a serve cell reaches its server."""

    url: str | None = None
    command: tuple[str, ...] | None = None
    engine: str = "auto"
    """``auto`` (GGUF: llama-cpp, safetensors: apr-qa), ``llama-cpp`` or ``apr-qa``."""
    api_key_env: str | None = None
    model: str | None = None
    """The model name sent in requests (``url`` servers often want their own)."""
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S
    concurrency: int = DEFAULT_CONCURRENCY
    max_tokens_cap: int = DEFAULT_MAX_TOKENS_CAP
    """The bound apr-qa's own server puts on ``max_tokens``."""
    port: int | None = None
    """A fixed port for the servers apr-qa starts (default: a free one per server)."""
    stop_grace_s: float = DEFAULT_STOP_GRACE_S
    """How long a server we started has, after SIGTERM, before it is killed (F-HTTP-012)."""

    def api_key(self) -> str | None:
        """The key from the environment (None when not configured or not set)."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


def serve_spec(sections: Mapping[str, Mapping[str, Any]]) -> ServeSpec:
    """The spec of a playbook's ``sections`` (the defaults when it has no ``serve``)."""
    raw = dict(sections.get("serve") or {})
    command = raw.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    return ServeSpec(
        url=str(raw["url"]) if raw.get("url") else None,
        command=tuple(str(c) for c in command) if command else None,
        engine=str(raw.get("engine") or "auto"),
        api_key_env=str(raw["api_key_env"]) if raw.get("api_key_env") else None,
        model=str(raw["model"]) if raw.get("model") else None,
        ready_timeout_s=float(raw.get("ready_timeout_s") or DEFAULT_READY_TIMEOUT_S),
        concurrency=int(raw.get("concurrency") or DEFAULT_CONCURRENCY),
        max_tokens_cap=int(raw.get("max_tokens_cap") or DEFAULT_MAX_TOKENS_CAP),
        port=int(raw["port"]) if raw.get("port") else None,
        stop_grace_s=float(raw.get("stop_grace_s") or DEFAULT_STOP_GRACE_S),
    )
