"""Whether a backend has a usable GPU here, and if not, the one-line reason.

A gpu cell on a machine without one is ``skipped`` with this reason, visibly.
"""

from __future__ import annotations

from apr_qa.errors import UsageError

__all__ = ["gpu_unavailable_reason"]


def gpu_unavailable_reason(kind: str) -> str | None:
    """None when ``kind`` can run on a GPU here, else why not (one line)."""
    if kind == "transformers":
        return _torch_reason()
    if kind == "llama_cpp":
        return _llama_cpp_reason()
    if kind == "fake":
        # The fake runs nowhere; saying so lets engine tests exercise the skip path.
        return "the fake backend has no GPU mode"
    raise UsageError(f"unknown backend {kind!r}")


def _torch_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device visible (torch.cuda.is_available() is False)"
    return None


def _llama_cpp_reason() -> str | None:
    try:
        import llama_cpp
    except ImportError:
        return "llama-cpp-python is not installed"
    # llama.cpp answers True only when a GPU backend is compiled in *and* registered a
    # device, so a CUDA build on a machine without a visible GPU answers False too.
    if not llama_cpp.llama_supports_gpu_offload():
        return (
            "llama-cpp-python has no GPU offload here (llama_supports_gpu_offload() is "
            "False: built without CUDA, or no device visible)"
        )
    return None
