"""G0 knows the architectures users bring: one tiny checkpoint of each architecture in
the table (tests/fixtures/arch/, built by transformers itself, plus the trained
fixtures in src/apr_qa/fixtures/models) holds every G0 rule, and copies broken the
way each architecture can break falsify the right one.

Gemma stores its RMSNorm scales as ``w = scale - 1``: all zeros is the identity and
must hold, all ``-1`` (scale 0) is the defect. Phi3 fuses q/k/v and gate/up, so a
fused tensor of the wrong size is a shape defect llama's names would never see.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tests.conftest import REPO

from apr_qa.checks.finding import Finding
from apr_qa.checks.integrity import GATES, check_integrity
from apr_qa.fixtures import FIXTURES_DIR, fixture_names
from apr_qa.models.architectures import ARCHITECTURES, architecture

ARCH_DIR = REPO / "tests" / "fixtures" / "arch"
# The architectures of the README's certification table: each must have a fixture.
CERTIFIED = {"llama", "mistral", "qwen2", "gemma2", "phi3"}


def _model_type(directory: Path) -> str:
    model_type = json.loads((directory / "config.json").read_text())["model_type"]
    assert isinstance(model_type, str)
    return model_type


def _fixtures() -> dict[str, Path]:
    """Every checkpoint fixture by name: the built ones by architecture, the trained ones."""
    found = {p.name: p for p in sorted(ARCH_DIR.iterdir()) if (p / "config.json").is_file()}
    found.update({name: FIXTURES_DIR / name for name in fixture_names()})
    return found


FIXTURES = _fixtures()


def verdicts(path: Path) -> dict[str, Finding]:
    findings = check_integrity(path)
    assert [f.gate for f in findings] == list(GATES)
    return {f.gate[-3:]: f for f in findings}


def broken_copy(
    fixture: str,
    tmp_path: Path,
    edit: Callable[[dict[str, torch.Tensor]], None],
    config: dict[str, Any] | None = None,
) -> Path:
    """A copy of ``fixture`` whose tensors ``edit`` changed (and config keys replaced)."""
    out = tmp_path / fixture
    shutil.copytree(FIXTURES[fixture], out, ignore=shutil.ignore_patterns("*.gguf"))
    tensors = load_file(out / "model.safetensors")
    edit(tensors)
    save_file(tensors, out / "model.safetensors")
    if config:
        doc = json.loads((out / "config.json").read_text())
        doc.update(config)
        (out / "config.json").write_text(json.dumps(doc))
    return out


def set_norms(value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    """Every RMSNorm weight (names ending in ``norm.weight``) filled with ``value``."""

    def edit(tensors: dict[str, torch.Tensor]) -> None:
        names = [n for n in tensors if n.endswith("norm.weight")]
        assert len(names) >= 5, names  # per-layer norms and the final one
        for name in names:
            tensors[name] = torch.full_like(tensors[name], value)

    return edit


def assert_only(v: dict[str, Finding], failing: str | None) -> Finding | None:
    """``failing`` falsified (none when ``None``), 005 skipped, the others corroborated."""
    for gate, f in v.items():
        want = None if gate == "005" else gate != failing
        assert f.passed is want, (gate, f.reason)
    return None if failing is None else v[failing]


def falsified(v: dict[str, Finding], gate: str) -> Finding:
    """Only ``gate`` falsified; its finding."""
    f = assert_only(v, gate)
    assert f is not None
    return f


def tensor_names(path: Path) -> list[str]:
    with safe_open(str(path / "model.safetensors"), framework="pt") as handle:
        return list(handle.keys())


# --- the table and its fixtures ---------------------------------------------------------


def test_every_architecture_in_the_table_has_a_fixture() -> None:
    covered = {_model_type(path) for path in FIXTURES.values()}
    assert covered >= set(ARCHITECTURES), set(ARCHITECTURES) - covered
    assert set(ARCHITECTURES) >= CERTIFIED


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_is_tiny(name: str) -> None:
    weights = FIXTURES[name] / "model.safetensors"
    limit = 200_000 if FIXTURES[name].parent == ARCH_DIR else 1_000_000
    assert 0 < weights.stat().st_size < limit


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_clean_fixture_holds_every_g0_rule(name: str) -> None:
    directory = FIXTURES[name]
    v = verdicts(directory)
    for gate in ("001", "002", "003", "004"):
        assert v[gate].passed is True, (gate, v[gate].reason)
    assert v["005"].passed is None and v["005"].reason == "not a GGUF artifact"
    model_type = _model_type(directory)
    shapes = v["001"].details
    assert shapes["layout"] == model_type
    # Every tensor of the file was compared (and the config sizes besides).
    n_tensors = len(tensor_names(directory))
    assert shapes["compared"] > n_tensors  # type: ignore[operator]
    assert f"; {model_type} layout)" in v["001"].reason
    assert v["003"].details["scanned"] == n_tensors


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_the_name_table_names_every_tensor_both_ways(name: str) -> None:
    arch = architecture(_model_type(FIXTURES[name]))
    for hf_name in tensor_names(FIXTURES[name]):
        gguf_name = arch.gguf_name(hf_name)
        assert gguf_name is not None, hf_name
        assert arch.hf_name(gguf_name) == hf_name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_transformers_loads_the_fixture_as_its_architecture(name: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    directory = FIXTURES[name]
    model, info = AutoModelForCausalLM.from_pretrained(directory, output_loading_info=True)
    assert type(model).__name__ in architecture(_model_type(directory)).hf_classes
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert not info.get("mismatched_keys"), info
    with torch.no_grad():
        logits = model(torch.tensor([[2, 3, 4]])).logits
    assert torch.isfinite(logits).all() and float(logits.std()) > 0


# --- Gemma's scale - 1 norms ------------------------------------------------------------


@pytest.mark.parametrize("name", ["gemma2", "gemma"])
def test_gemma_norms_all_zero_are_the_identity_and_hold(name: str, tmp_path: Path) -> None:
    v = verdicts(broken_copy(name, tmp_path, set_norms(0.0)))
    assert_only(v, None)
    assert v["003"].details["norm_scale"] == "1 + w"


@pytest.mark.parametrize("name", ["gemma2", "gemma"])
def test_gemma_norms_all_minus_one_have_scale_zero_and_falsify_003(
    name: str, tmp_path: Path
) -> None:
    f = falsified(verdicts(broken_copy(name, tmp_path, set_norms(-1.0))), "003")
    assert f"a norm weight all -1: {name} stores scale - 1, so its scale is zero" in f.reason
    assert "model.norm.weight" in f.details["tensors"]  # type: ignore[operator]
    assert f.details["norms"] == f.details["tensors"]


@pytest.mark.parametrize("name", ["mistral", "tiny-llama", "qwen3", "phi3"])
def test_scale_norms_zeroed_falsify_003(name: str, tmp_path: Path) -> None:
    f = falsified(verdicts(broken_copy(name, tmp_path, set_norms(0.0))), "003")
    assert "(a zeroed norm weight)" in f.reason
    # ... and all -1 is an unusual but working scale there (sign flips, no zero).
    assert verdicts(broken_copy(name, tmp_path / "minus", set_norms(-1.0)))["003"].passed is True


@pytest.mark.slow
def test_gemma2_norm_defect_is_real_in_transformers(tmp_path: Path) -> None:
    """The -1 mutant's logits are all equal (every hidden state normalized to zero);
    the all-zero copy still tells tokens apart."""
    import torch
    from transformers import AutoModelForCausalLM

    def logits(path: Path) -> torch.Tensor:
        model = AutoModelForCausalLM.from_pretrained(path)
        with torch.no_grad():
            out: torch.Tensor = model(torch.tensor([[2, 3, 4, 5]])).logits[0, -1]
        return out

    assert float(logits(broken_copy("gemma2", tmp_path / "zero", set_norms(0.0))).std()) > 0
    assert float(logits(broken_copy("gemma2", tmp_path / "minus", set_norms(-1.0))).std()) == 0


def test_unknown_architecture_says_its_norms_were_not_judged(tmp_path: Path) -> None:
    path = broken_copy("gemma2", tmp_path, set_norms(0.0), {"model_type": "gemma9"})
    v = verdicts(path)
    assert v["003"].passed is True
    assert "norm weight(s) all 0 or all -1 not judged" in v["003"].reason
    assert "model type 'gemma9' is not in the architecture table" in v["003"].reason
    assert v["003"].details["norm_scale"] == "unknown"
    # Shapes are still compared where the names are llama's, and the reason says so.
    assert v["001"].passed is True
    assert "not in the architecture table, so no tensor was required" in v["001"].reason


# --- layouts: fused, biased, extra norms ---------------------------------------------------

QKV = "model.layers.1.self_attn.qkv_proj.weight"
GATE_UP = "model.layers.0.mlp.gate_up_proj.weight"


def test_phi3_qkv_of_the_wrong_fused_size_falsifies_001(tmp_path: Path) -> None:
    def drop_v(tensors: dict[str, torch.Tensor]) -> None:
        tensors[QKV] = tensors[QKV][:48].clone()  # q (32 rows) and k (16), v forgotten

    f = falsified(verdicts(broken_copy("phi3", tmp_path, drop_v)), "001")
    assert f.reason == (
        f"{QKV} has shape (48, 32), expected (64, 32) "
        "((4 heads + 2 × 2 kv heads) × head_dim 8, hidden 32)"
    )


def test_phi3_gate_up_not_fused_falsifies_001(tmp_path: Path) -> None:
    def unfuse(tensors: dict[str, torch.Tensor]) -> None:
        tensors[GATE_UP] = tensors[GATE_UP][:48].clone()

    f = falsified(verdicts(broken_copy("phi3", tmp_path, unfuse)), "001")
    assert f.reason.startswith(
        f"{GATE_UP} has shape (48, 32), expected (96, 32) (2 × intermediate 48, hidden 32)"
    )


@pytest.mark.slow
def test_phi3_wrong_qkv_is_refused_by_transformers(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    def drop_v(tensors: dict[str, torch.Tensor]) -> None:
        tensors[QKV] = tensors[QKV][:48].clone()

    path = broken_copy("phi3", tmp_path, drop_v)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        AutoModelForCausalLM.from_pretrained(path)


@pytest.mark.parametrize(
    ("name", "tensor"),
    [
        ("tiny-qwen2", "model.layers.0.self_attn.k_proj.bias"),
        ("gemma2", "model.layers.1.pre_feedforward_layernorm.weight"),
        ("gemma2", "model.layers.0.post_feedforward_layernorm.weight"),
        ("qwen3", "model.layers.0.self_attn.q_norm.weight"),
        ("phi3", "model.layers.0.self_attn.qkv_proj.weight"),
    ],
)
def test_a_tensor_the_layout_requires_is_missing(name: str, tensor: str, tmp_path: Path) -> None:
    def drop(tensors: dict[str, torch.Tensor]) -> None:
        del tensors[tensor]

    f = falsified(verdicts(broken_copy(name, tmp_path, drop)), "001")
    assert f.reason.startswith(f"missing tensor {tensor} (layer ")


def test_gemma2_untied_lm_head_is_compared_and_tied_default_holds(tmp_path: Path) -> None:
    # gemma2 ties by default: no lm_head is fine; one of the wrong shape is not.
    def short_head(tensors: dict[str, torch.Tensor]) -> None:
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"][:-8].clone()

    f = falsified(verdicts(broken_copy("gemma2", tmp_path, short_head)), "001")
    assert (
        f.reason == "lm_head.weight has shape (376, 32), expected (384, 32) (vocab 384, hidden 32)"
    )
    config = {"tie_word_embeddings": False}
    untied = broken_copy("gemma2", tmp_path / "untied", lambda t: None, config)
    f = falsified(verdicts(untied), "001")
    assert f.reason.startswith("missing tensor lm_head.weight")


# --- the same layouts in GGUF -----------------------------------------------------------


def gguf_of(
    fixture: str, tmp_path: Path, edit: Callable[[str, torch.Tensor], torch.Tensor] | None = None
) -> Path:
    """The fixture written as llama.cpp's converter would: GGUF names from the table, and
    Gemma's ``scale - 1`` norms stored as the scale. ``edit(gguf_name, data)`` breaks one."""
    import gguf

    from apr_qa.models.gguf_tokenizer import read_tokenizer

    directory = FIXTURES[fixture]
    config = json.loads((directory / "config.json").read_text())
    arch = architecture(config["model_type"])
    path = tmp_path / f"{fixture}.gguf"
    writer = gguf.GGUFWriter(str(path), arch.gguf_arch)
    sizes = {
        "block_count": config["num_hidden_layers"],
        "embedding_length": config["hidden_size"],
        "feed_forward_length": config["intermediate_size"],
        "attention.head_count": config["num_attention_heads"],
        "attention.head_count_kv": config["num_key_value_heads"],
        "context_length": config["max_position_embeddings"],
    }
    for key, value in sizes.items():
        writer.add_uint32(f"{arch.gguf_arch}.{key}", value)
    read_tokenizer(directory, config["vocab_size"]).write(writer)
    offset = 1.0 if config["model_type"].startswith("gemma") else 0.0
    for hf_name, data in load_file(directory / "model.safetensors").items():
        name = arch.gguf_name(hf_name)
        assert name is not None, hf_name
        values = data.to(torch.float32)
        if hf_name.endswith("norm.weight"):
            values = values + offset
        if edit is not None:
            values = edit(name, values)
        writer.add_tensor(name, values.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


GGUF_FIXTURES = sorted(n for n in FIXTURES if FIXTURES[n].parent == ARCH_DIR)


@pytest.mark.parametrize("name", GGUF_FIXTURES)
def test_gguf_of_each_architecture_holds_every_g0_rule(name: str, tmp_path: Path) -> None:
    v = verdicts(gguf_of(name, tmp_path))
    for gate, f in v.items():
        assert f.passed is True, (gate, f.reason)
    # llama.cpp writes mistral as llama: the GGUF is read with llama's (equal) layout.
    assert v["001"].details["layout"] == ("llama" if name == "mistral" else name)


@pytest.mark.parametrize("name", ["gemma2", "mistral"])
def test_gguf_norms_store_the_scale_so_zero_falsifies_003(name: str, tmp_path: Path) -> None:
    # llama.cpp's converter adds Gemma's 1: in GGUF a zero norm is scale 0 for every
    # architecture, and -1 is a (sign-flipping) working scale.
    target = "blk.0.attn_norm.weight"

    def fill(value: float) -> Callable[[str, torch.Tensor], torch.Tensor]:
        return lambda n, d: torch.full_like(d, value) if n == target else d

    v = verdicts(gguf_of(name, tmp_path, fill(0.0)))
    assert v["003"].passed is False
    assert (
        v["003"].reason
        == f"1 of {v['003'].details['scanned']} tensor(s) are entirely zero (a zeroed norm weight): {target}"
    )
    assert verdicts(gguf_of(name, tmp_path, fill(-1.0)))["003"].passed is True


def test_gguf_phi3_ffn_up_must_hold_gate_and_up(tmp_path: Path) -> None:
    def unfuse(name: str, data: torch.Tensor) -> torch.Tensor:
        return data[:48].clone() if name == "blk.1.ffn_up.weight" else data

    v = verdicts(gguf_of("phi3", tmp_path, unfuse))
    assert v["001"].passed is False
    assert v["001"].reason.startswith(
        "blk.1.ffn_up.weight has shape (48, 32), expected (96, 32) (2 × intermediate 48, hidden 32)"
    )
