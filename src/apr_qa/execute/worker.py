"""The worker process: loads one model once and answers requests over a pipe.

Run as ``python -m apr_qa.execute.worker``. Requests and replies are JSON
lines on the worker's original stdout/stdin; everything the runtimes print
(llama.cpp writes to the C stdout) goes to stderr, whose tail the parent keeps
for crash reports. A model failing is a reply, never an exception here.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["main"]


def _protocol_streams() -> tuple[IO[str], IO[str]]:
    """Keep the real stdout for replies; point fd 1 at stderr for library chatter."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return sys.stdin, os.fdopen(out_fd, "w", encoding="utf-8", buffering=1)


def _reply(out: IO[str], payload: dict[str, Any]) -> None:
    out.write(
        json.dumps(payload, ensure_ascii=False).encode("utf-8", "backslashreplace").decode() + "\n"
    )
    out.flush()


def _generation(gen: Any) -> dict[str, Any]:
    return {
        "text": gen.text,
        "token_ids": list(gen.token_ids),
        "prompt_tokens": gen.prompt_tokens,
        "ttft_s": gen.ttft_s,
        "duration_s": gen.duration_s,
        "tok_per_s": gen.tok_per_s,
        "finish_reason": gen.finish_reason,
    }


def serve(inp: IO[str], out: IO[str]) -> None:
    """Answer requests until ``exit`` or end of input."""
    from apr_qa.backends import create_backend

    backend: Any = None
    for line in inp:
        request = json.loads(line)
        op = request["op"]
        if op == "exit":
            break
        try:
            if op == "load":
                started = time.perf_counter()
                backend = create_backend(request["backend"])
                backend.load(
                    Path(request["path"]),
                    request["device"],
                    trust_remote_code=request.get("trust_remote_code", False),
                )
                vocab = backend.vocab()
                _reply(
                    out,
                    {
                        "ok": True,
                        "load_s": time.perf_counter() - started,
                        "vocab": {
                            "pad_token": vocab.pad_token,
                            "eos_token": vocab.eos_token,
                            "special_tokens": list(vocab.special_tokens),
                        },
                    },
                )
            elif op == "generate":
                messages = request.get("messages")
                gen = backend.generate(
                    prompt=request.get("prompt"),
                    messages=messages,
                    max_tokens=request["max_tokens"],
                    temperature=request["temperature"],
                    seed=request["seed"],
                )
                _reply(out, {"ok": True, "generation": _generation(gen)})
            elif op == "ping":
                _reply(out, {"ok": True})
            else:
                _reply(out, {"ok": False, "error": f"unknown request {op!r}"})
        except Exception as exc:  # a model failing is a reply: the parent turns it into evidence
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _reply(out, {"ok": False, "error": f"{type(exc).__name__}: {message}"})
    if backend is not None:
        backend.close()


# What a backend kind imports before it can load anything; a worker started
# ahead of its cell imports it while the parent is still preparing.
_WARM_IMPORTS = {
    "llama_cpp": ("apr_qa.backends.llama_cpp_backend", "llama_cpp"),
    "transformers": ("apr_qa.backends.transformers_backend", "torch", "transformers"),
}


def _warm(kind: str) -> None:
    import importlib

    for module in _WARM_IMPORTS.get(kind, ()):
        try:
            importlib.import_module(module)
        except ImportError:
            return  # the load request reports a missing runtime properly


def main() -> None:
    """Entry point of the worker process: ``worker [--warm KIND]``."""
    inp, out = _protocol_streams()
    if len(sys.argv) == 3 and sys.argv[1] == "--warm":
        _warm(sys.argv[2])
    serve(inp, out)


if __name__ == "__main__":
    main()
