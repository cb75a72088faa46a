"""The worker process: loads one model once and answers requests over a pipe.

Run as ``python -m apr_qa.execute.worker``. Requests and replies are the typed
messages of :mod:`apr_qa.execute.messages`, one JSON line each, on the worker's
original stdin/stdout; everything the runtimes print
(llama.cpp writes to the C stdout) goes to stderr, whose tail the parent keeps
for crash reports. A model failing is a reply, never an exception here.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from apr_qa.backends import ContextOverflow
from apr_qa.execute.messages import (
    Exit,
    Failed,
    Generate,
    Generated,
    Hidden,
    HiddenStates,
    Load,
    Loaded,
    LoadWeights,
    Logits,
    Ping,
    Pong,
    Reply,
    Request,
    Score,
    Tokenize,
    Tokens,
    decode_request,
    encode,
)

if TYPE_CHECKING:
    from apr_qa.backends import Backend

__all__ = ["main"]


def _protocol_streams() -> tuple[IO[bytes], IO[bytes]]:
    """Keep the real stdout for replies; point fd 1 at stderr for library chatter."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return sys.stdin.buffer, os.fdopen(out_fd, "wb")


def _answer(backend: Backend | None, request: Request) -> tuple[Backend | None, Reply]:
    """Honour one request; the backend after it (a load replaces it)."""
    from apr_qa.backends import create_backend

    if isinstance(request, Load):
        started = time.perf_counter()
        loaded = create_backend(request.backend)
        loaded.load(Path(request.path), request.device, trust_remote_code=request.trust_remote_code)
        return loaded, Loaded(time.perf_counter() - started, loaded.vocab())
    if isinstance(request, Ping):
        return backend, Pong()
    if backend is None:
        return backend, Failed(f"no model is loaded for {type(request).__name__}")
    match request:
        case Generate():
            gen = backend.generate(
                prompt=request.prompt,
                messages=request.messages,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                seed=request.seed,
                min_tokens=request.min_tokens,
            )
            return backend, Generated(gen)
        case Tokenize(text=text):
            return backend, Tokens(tuple(backend.tokenize(text)))
        case Score(token_ids=ids):
            return backend, Logits(backend.score(ids))
        case HiddenStates(token_ids=ids):
            return backend, Hidden(backend.hidden_states(ids))
        case LoadWeights(path=path):
            return backend, _load_weights(backend, Path(path))
    return backend, Failed(f"unsupported request {type(request).__name__}")


def _load_weights(backend: Backend, path: Path) -> Reply:
    from apr_qa.backends import Unsupported
    from apr_qa.backends.transformers_backend import TransformersBackend

    if not isinstance(backend, TransformersBackend):
        raise Unsupported(f"the {backend.kind} backend cannot take another artifact's weights")
    started = time.perf_counter()
    backend.load_weights(path)
    return Loaded(time.perf_counter() - started, backend.vocab())


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer requests until :class:`Exit` or end of input."""
    backend: Backend | None = None
    for line in inp:
        request = decode_request(line)
        if isinstance(request, Exit):
            break
        try:
            backend, reply = _answer(backend, request)
        except Exception as exc:  # a model failing is a reply: the parent turns it into evidence
            if isinstance(exc, ContextOverflow):
                # A prompt too long for the context asked nothing: typed, so the cell skips it.
                reply = Failed(exc.detail, "context")
            else:
                text = str(exc).strip()
                message = text.splitlines()[0] if text else type(exc).__name__
                reply = Failed(f"{type(exc).__name__}: {message}")
        out.write(encode(reply))
        out.flush()
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
