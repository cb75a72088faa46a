"""The backends package: the kind mapping, request checks, import cost, GPU reasons."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from apr_qa.backends import (
    BACKEND_KINDS,
    backend_for_format,
    check_request,
    create_backend,
    timed_generation,
)
from apr_qa.backends.device import gpu_unavailable_reason
from apr_qa.errors import EnvironmentProblem, UsageError


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_create_backend_returns_that_kind(kind: str) -> None:
    assert create_backend(kind).kind == kind


def test_unknown_backend_is_a_usage_error_listing_the_kinds() -> None:
    with pytest.raises(UsageError, match=r"unknown backend 'vllm'.*transformers"):
        create_backend("vllm")


def test_formats_map_to_their_runtime() -> None:
    assert backend_for_format("safetensors") == "transformers"
    assert backend_for_format("gguf") == "llama_cpp"
    with pytest.raises(UsageError, match="onnx"):
        backend_for_format("onnx")


def test_importing_backends_loads_no_heavy_library() -> None:
    code = (
        "import sys, apr_qa.backends, apr_qa.backends.device;"
        "print(sorted(m for m in ('torch', 'transformers', 'llama_cpp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("prompt", "messages", "max_tokens", "temperature", "match"),
    [
        (None, None, 4, 0.0, "exactly one"),
        ("hi", [{"role": "user", "content": "hi"}], 4, 0.0, "exactly one"),
        (None, [], 4, 0.0, "empty"),
        (None, [{"role": "user"}], 4, 0.0, "role and content"),
        ("hi", None, -1, 0.0, "max_tokens"),
        ("hi", None, 4, -0.5, "temperature"),
    ],
)
def test_bad_requests_are_usage_errors(
    prompt: str | None,
    messages: list[dict[str, str]] | None,
    max_tokens: int,
    temperature: float,
    match: str,
) -> None:
    with pytest.raises(UsageError, match=match):
        check_request(prompt, messages, max_tokens, temperature)


def test_a_negative_min_tokens_is_a_usage_error() -> None:
    check_request("hi", None, 4, 0.0, min_tokens=4)
    with pytest.raises(UsageError, match="min_tokens"):
        check_request("hi", None, 4, 0.0, min_tokens=-1)


def test_timings_rate_counts_tokens_after_the_first() -> None:
    g = timed_generation(
        text="abc",
        token_ids=[1, 2, 3, 4, 5],
        prompt_tokens=7,
        started=10.0,
        first_token_at=10.5,
        finished=12.5,
        finish_reason="stop",
    )
    assert (g.ttft_s, g.duration_s, g.tok_per_s) == (0.5, 2.5, 2.0)
    one = timed_generation(
        text="a",
        token_ids=[1],
        prompt_tokens=1,
        started=0.0,
        first_token_at=0.1,
        finished=0.2,
        finish_reason="length",
    )
    assert one.tok_per_s == 0.0


def _cuda_visible() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def test_transformers_gpu_reason_follows_torch() -> None:
    reason = gpu_unavailable_reason("transformers")
    if _cuda_visible():
        assert reason is None
    else:
        assert reason is not None and "no CUDA device" in reason


def test_llama_cpp_gpu_reason_follows_offload_support() -> None:
    import llama_cpp

    reason = gpu_unavailable_reason("llama_cpp")
    if llama_cpp.llama_supports_gpu_offload():
        assert reason is None
    else:
        assert reason is not None and "llama_supports_gpu_offload() is False" in reason


def test_fake_has_no_gpu_and_unknown_kind_is_rejected() -> None:
    assert "has no GPU mode" in (gpu_unavailable_reason("fake") or "")
    with pytest.raises(UsageError):
        gpu_unavailable_reason("tpu")


@pytest.mark.parametrize("kind", ["transformers", "llama_cpp"])
def test_gpu_load_without_gpu_is_an_environment_problem(kind: str, tmp_path: Path) -> None:
    if gpu_unavailable_reason(kind) is None:
        pytest.skip("a GPU is usable here; this checks the machine without one")
    with pytest.raises(EnvironmentProblem, match="cannot load on gpu"):
        create_backend(kind).load(tmp_path, "gpu")


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_unknown_device_is_a_usage_error(kind: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        create_backend(kind).load(tmp_path, "tpu")


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_using_an_unloaded_backend_is_a_usage_error(kind: str) -> None:
    with pytest.raises(UsageError, match="not loaded"):
        create_backend(kind).tokenize("hello")
