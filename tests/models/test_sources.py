"""Model sources: local directories and files, GGUF per quantization, the Hub cache,
conversion of missing quantizations."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.models.sources import CONVERTED_NOTE, Artifact, ModelRef, resolve

Q8_0 = gguf.LlamaFileType.MOSTLY_Q8_0
F16 = gguf.LlamaFileType.MOSTLY_F16


def _gguf(path: Path, file_type: int) -> Path:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_file_type(file_type)
    writer.add_tensor("x", np.ones((2, 2), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _checkpoint(root: Path, dtype: type[np.floating] = np.float16) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama"}))
    # Mostly `dtype`, with a small f32 tensor: the checkpoint's dtype is the bulk's.
    save_file(
        {"big": np.ones((64, 64), dtype), "norm": np.ones(4, np.float32)},
        str(root / "model.safetensors"),
    )
    return root


def test_local_directory_gives_one_artifact_per_format_and_quant(tmp_path: Path) -> None:
    root = _checkpoint(tmp_path / "m")
    q8 = _gguf(root / "m-Q8_0.gguf", Q8_0)
    f16 = _gguf(root / "m-f16.gguf", F16)
    _gguf(root / "m-bf16.gguf", gguf.LlamaFileType.MOSTLY_BF16)
    res = resolve(ModelRef(path=root), ["safetensors", "gguf"], ["q8_0", "F16"])
    assert res.missing == []
    assert res.artifacts == [
        Artifact("safetensors", "f16", root, "local"),
        Artifact("gguf", "q8_0", q8, "local"),
        Artifact("gguf", "f16", f16, "local"),
    ]


def test_safetensors_quantization_is_its_stored_dtype(tmp_path: Path) -> None:
    root = _checkpoint(tmp_path / "m", np.float32)
    (art,) = resolve(ModelRef(path=root), ["safetensors"], []).artifacts
    assert art.quantization == "f32"


def test_pattern_is_a_whole_token(tmp_path: Path) -> None:
    root = _checkpoint(tmp_path / "m")
    _gguf(root / "m-q4_k_m.gguf", Q8_0)
    _gguf(root / "m-bf16.gguf", F16)
    res = resolve(ModelRef(path=root), ["gguf"], ["q4_k", "f16"], convert_missing=False)
    assert res.artifacts == []
    assert [(m.quantization, "no GGUF file" in m.reason) for m in res.missing] == [
        ("q4_k", True),
        ("f16", True),
    ]


def test_ambiguous_pattern_lists_candidates(tmp_path: Path) -> None:
    root = _checkpoint(tmp_path / "m")
    _gguf(root / "a-q8_0.gguf", Q8_0)
    _gguf(root / "b-Q8_0.gguf", Q8_0)
    with pytest.raises(UsageError, match=r"ambiguous: a-q8_0\.gguf, b-Q8_0\.gguf"):
        resolve(ModelRef(path=root), ["gguf"], ["q8_0"])


def test_explicit_file_names_and_globs_win(tmp_path: Path) -> None:
    root = _checkpoint(tmp_path / "m")
    _gguf(root / "a-q8_0.gguf", Q8_0)
    _gguf(root / "b-q8_0.gguf", Q8_0)
    odd = _gguf(root / "weights.gguf", F16)
    ref = ModelRef(path=root, files={"q8_0": "b-*.gguf", "f16": "weights.gguf"})
    res = resolve(ref, ["gguf"], ["q8_0", "f16"])
    assert [a.path for a in res.artifacts] == [root / "b-q8_0.gguf", odd]


def test_explicitly_named_file_that_is_absent_is_missing(tmp_path: Path) -> None:
    root = _checkpoint(tmp_path / "m")
    ref = ModelRef(path=root, files={"q8_0": "gone.gguf"})
    res = resolve(ref, ["gguf"], ["q8_0"], convert_missing=False)
    assert len(res.missing) == 1
    assert "gone.gguf" in res.missing[0].reason


def test_single_gguf_file_reads_its_quantization_from_metadata(tmp_path: Path) -> None:
    path = _gguf(tmp_path / "whatever.gguf", Q8_0)
    res = resolve(ModelRef(path=path), ["gguf", "safetensors"], ["q8_0", "q4_0"])
    assert res.artifacts == [Artifact("gguf", "q8_0", path, "local")]
    assert sorted((m.format, m.quantization) for m in res.missing) == [
        ("gguf", "q4_0"),
        ("safetensors", ""),
    ]


def test_apr_format_is_missing_with_a_reason(tmp_path: Path) -> None:
    root = _checkpoint(tmp_path / "m")
    res = resolve(ModelRef(path=root), ["apr"], [])
    assert res.artifacts == []
    assert res.missing[0].format == "apr"
    assert "no runtime" in res.missing[0].reason


def test_no_model_at_all(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="model not found"):
        resolve(ModelRef(path=tmp_path / "nope"), ["safetensors"], [])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no model weights"):
        resolve(ModelRef(path=tmp_path / "empty"), ["safetensors"], [])
    with pytest.raises(UsageError, match="neither path nor hf_repo"):
        resolve(ModelRef(), ["safetensors"], [])


def _fake_converter(monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> list[tuple[Path, str]]:
    calls: list[tuple[Path, str]] = []

    def convert(src: Path, dst: Path, quant: str) -> Path:
        calls.append((src, quant))
        if fail:
            raise UsageError(f"unsupported quant {quant!r}")
        return _gguf(dst, Q8_0)

    module = types.ModuleType("apr_qa.models.convert")
    module.convert = convert  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "apr_qa.models.convert", module)
    return calls


def test_missing_quant_is_converted_from_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_converter(monkeypatch)
    root = _checkpoint(tmp_path / "m")
    res = resolve(ModelRef(path=root), ["gguf"], ["q8_0"], workdir=tmp_path / "work")
    assert calls == [(root, "q8_0")]
    (art,) = res.artifacts
    assert (art.origin, art.note, art.quantization) == ("converted", CONVERTED_NOTE, "q8_0")
    assert art.path.parent == tmp_path / "work"
    assert art.path.is_file()


def test_conversion_off_or_failing_leaves_it_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_converter(monkeypatch, fail=True)
    root = _checkpoint(tmp_path / "m")
    off = resolve(ModelRef(path=root), ["gguf"], ["q8_0"], convert_missing=False)
    assert calls == []
    assert [m.quantization for m in off.missing] == ["q8_0"]
    failed = resolve(ModelRef(path=root), ["gguf"], ["q5_1"], workdir=tmp_path / "w")
    assert failed.artifacts == []
    assert "conversion failed" in failed.missing[0].reason


# --- Hugging Face cache ----------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_hub_cache(cache: Path, repo: str, ref: str = "main") -> Path:
    """The layout huggingface_hub writes: refs/<ref> -> commit, snapshots/<commit>/files."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / ref).write_text(COMMIT)
    snapshot = _checkpoint(storage / "snapshots" / COMMIT)
    _gguf(snapshot / "tiny-q8_0.gguf", Q8_0)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", "hf_secretTOKEN123")
    return cache


def test_offline_uses_the_cached_snapshot(offline_cache: Path) -> None:
    snapshot = _fake_hub_cache(offline_cache, "org/tiny")
    res = resolve(ModelRef(hf_repo="org/tiny"), ["safetensors", "gguf"], ["q8_0"])
    assert res.missing == []
    assert [(a.format, a.origin, a.path) for a in res.artifacts] == [
        ("safetensors", "hub", snapshot),
        ("gguf", "hub", snapshot / "tiny-q8_0.gguf"),
    ]


def test_offline_honours_the_revision(offline_cache: Path) -> None:
    snapshot = _fake_hub_cache(offline_cache, "org/tiny", ref="v1")
    res = resolve(ModelRef(hf_repo="org/tiny", revision="v1"), ["safetensors"], [])
    assert res.artifacts[0].path == snapshot
    with pytest.raises(EnvironmentProblem, match=r"org/tiny@main"):
        resolve(ModelRef(hf_repo="org/tiny"), ["safetensors"], [])


def test_offline_uncached_is_an_environment_problem_without_the_token(
    offline_cache: Path,
) -> None:
    with pytest.raises(EnvironmentProblem, match=r"org/absent@v2") as err:
        resolve(ModelRef(hf_repo="org/absent", revision="v2"), ["safetensors"], [])
    assert "hf_secretTOKEN123" not in str(err.value)
    assert "offline" in str(err.value)


def test_hf_home_is_honoured_when_hub_cache_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _fake_hub_cache(tmp_path / "home" / "hub", "org/tiny")
    res = resolve(ModelRef(hf_repo="org/tiny"), ["safetensors"], [])
    assert res.artifacts[0].path == snapshot


# --- Hub, online: the listing decides what is downloaded -------------------------


def _online(monkeypatch: pytest.MonkeyPatch, listing: list[str], snapshot: Path) -> list[list[str]]:
    from apr_qa.models import sources_hub

    downloads: list[list[str]] = []

    def fake_snapshot(repo: str, revision: str | None, patterns: list[str]) -> Path:
        downloads.append(list(patterns))
        return snapshot

    monkeypatch.setattr(sources_hub, "remote_files", lambda repo, revision: listing)
    monkeypatch.setattr(sources_hub, "hub_snapshot", fake_snapshot)
    return downloads


def test_online_ambiguity_is_an_error_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads = _online(monkeypatch, ["a-Q4_K_M.gguf", "b-q4_k_m.gguf", "config.json"], tmp_path)
    with pytest.raises(UsageError, match=r"org/m@main: q4_k_m is ambiguous: a-Q4_K_M\.gguf"):
        resolve(ModelRef(hf_repo="org/m"), ["gguf"], ["q4_k_m"])
    assert downloads == []


def test_online_downloads_only_the_chosen_gguf_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    gguf_file = _gguf(snapshot / "m-Q8_0.gguf", Q8_0)
    listing = ["m-Q8_0.gguf", "m-q4_0.gguf", "model.safetensors", "config.json"]
    downloads = _online(monkeypatch, listing, snapshot)
    res = resolve(ModelRef(hf_repo="org/m"), ["gguf"], ["q8_0"])
    (patterns,) = downloads
    assert "m-Q8_0.gguf" in patterns
    assert "m-q4_0.gguf" not in patterns
    assert "*.safetensors" not in patterns  # no conversion needed, no checkpoint download
    assert res.artifacts == [Artifact("gguf", "q8_0", gguf_file, "hub")]


def test_online_fetches_the_checkpoint_when_a_quant_must_be_converted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_converter(monkeypatch)
    snapshot = _checkpoint(tmp_path / "snap")
    downloads = _online(monkeypatch, ["model.safetensors", "config.json"], snapshot)
    res = resolve(ModelRef(hf_repo="org/m"), ["gguf"], ["q8_0"], workdir=tmp_path / "w")
    assert "*.safetensors" in downloads[0]
    assert [a.origin for a in res.artifacts] == ["converted"]


def test_files_can_name_the_checkpoint_and_a_single_gguf(tmp_path: Path) -> None:
    root = tmp_path / "m"
    ckpt = _checkpoint(root / "hf")
    weights = _gguf(root / "weights.bin.gguf", Q8_0)
    ref = ModelRef(path=root, files={"safetensors": "hf/model.safetensors", "gguf": weights.name})
    res = resolve(ref, ["safetensors", "gguf"], [])
    assert res.artifacts == [
        Artifact("safetensors", "f16", ckpt, "local"),
        Artifact("gguf", "q8_0", weights, "local"),
    ]
    gone = resolve(ModelRef(path=root, files={"gguf": "gone.gguf"}), ["gguf"], [])
    assert "gone.gguf" in gone.missing[0].reason


def test_a_named_file_whose_header_disagrees_is_noted(tmp_path: Path) -> None:
    root = _checkpoint(tmp_path / "m")
    _gguf(root / "m-q4_0.gguf", Q8_0)
    (art,) = resolve(ModelRef(path=root), ["gguf"], ["q4_0"]).artifacts
    assert art.note == "file_type says q8_0"
