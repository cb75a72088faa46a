"""Gateway G0: corroborated on clean checkpoints, falsified with the right gate on
copies broken in exactly one way (checkpoints built here; the committed fixtures
and the mutant table are walked in test_integrity_fixtures.py)."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from integrity_builders import (
    HEAD_DIM,
    HIDDEN,
    VOCAB,
    gguf_name,
    hf_config,
    hf_tensors,
    tensor_offset_field,
    train_tokenizer,
    write_gguf,
    write_hf,
)

from apr_qa.checks.finding import Finding
from apr_qa.checks.integrity import GATES, check_integrity
from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.evidence import Outcome

Verdicts = dict[str, Finding]


def run(path: Path, **kwargs: Any) -> Verdicts:
    findings = check_integrity(path, **kwargs)
    assert [f.gate for f in findings] == list(GATES)
    for f in findings:
        json.dumps(dict(f.details))  # evidence must be able to store them
        assert "\n" not in f.reason and f.reason
    return {f.gate[-3:]: f for f in findings}


def assert_only(v: Verdicts, failing: str, *, skipped: tuple[str, ...] = ()) -> Finding:
    """``failing`` falsified, ``skipped`` skipped, every other gate corroborated."""
    for gate, f in v.items():
        want = False if gate == failing else None if gate in skipped else True
        assert f.passed is want, (gate, f.reason)
    return v[failing]


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(path)
    return path


@pytest.fixture
def hf(tmp_path: Path, tok: Path) -> Callable[..., Path]:
    """Build an HF checkpoint dir from (tensors, config)."""

    def build(tensors: dict[str, np.ndarray] | None = None, **config: Any) -> Path:
        return write_hf(tmp_path / "hf", tok, tensors, hf_config(**config))

    return build


@pytest.fixture
def gg(tmp_path: Path, tok: Path) -> Callable[..., Path]:
    """Build a GGUF file; ``hf`` tensors are renamed to GGUF names."""

    def build(hf: dict[str, np.ndarray] | None = None, **kwargs: Any) -> Path:
        tensors = None if hf is None else {gguf_name(k): v for k, v in hf.items()}
        return write_gguf(tmp_path / "m.gguf", tok, tensors, **kwargs)

    return build


def without(name: str, layers: int = 2) -> dict[str, np.ndarray]:
    tensors = hf_tensors(layers=layers)
    del tensors[name]
    return tensors


def edited(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    tensors = hf_tensors()
    tensors[name] = fn(tensors[name].copy()).astype(np.float32)
    return tensors


# --- clean models -------------------------------------------------------------------


def test_clean_safetensors_corroborates_001_to_004_and_skips_005(hf: Callable[..., Path]) -> None:
    v = run(hf())
    for gate in ("001", "002", "003", "004"):
        assert v[gate].passed is True, v[gate].reason
        assert v[gate].outcome is Outcome.CORROBORATED
    assert v["005"].passed is None and v["005"].reason == "not a GGUF artifact"
    assert v["005"].outcome is Outcome.SKIPPED
    assert v["002"].details["scanned"] == 3 + 2 * 9
    assert "layers 2, hidden 32, vocab 320, heads 4, kv heads 2" in v["001"].reason


def test_clean_gguf_corroborates_all_five(gg: Callable[..., Path]) -> None:
    v = run(gg())
    for f in v.values():
        assert f.passed is True, f.reason
    # magic/version/bounds, architecture, 4 required keys, tensor count, alignment, overlap
    assert v["005"].details["compared"] == 9
    assert v["005"].details["tensors"] == 21 and v["005"].details["alignment"] == 32
    assert "GGUF v3" in v["005"].reason


def test_expected_shape_agreeing_is_compared(hf: Callable[..., Path]) -> None:
    plain = run(hf())["001"].details["compared"]
    expected = {
        "expected_num_layers": 2,
        "expected_hidden_dim": HIDDEN,
        "expected_vocab_size": VOCAB,
        "expected_num_heads": 4,
        "expected_num_kv_heads": 2,
        "expected_intermediate_dim": 48,
    }
    v = run(hf(), expected_shape=expected)
    assert v["001"].passed is True
    assert v["001"].details["compared"] == plain + 6  # type: ignore[operator]


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("expected_num_layers", 3, "layers held is 2"),
        ("expected_hidden_dim", 64, "model.embed_tokens.weight width is 32"),
        ("expected_vocab_size", 384, "model.embed_tokens.weight rows is 320"),
        ("expected_num_heads", 8, "config.json num_attention_heads is 4"),
        ("expected_num_kv_heads", 4, "config.json num_key_value_heads is 2"),
        ("expected_intermediate_dim", 64, "feed-forward width is 48"),
    ],
)
def test_expected_shape_disagreeing_falsifies_001(
    hf: Callable[..., Path], key: str, value: int, where: str
) -> None:
    f = assert_only(run(hf(), expected_shape={key: value}), "001", skipped=("005",))
    assert f.reason == f"playbook {key}={value} but {where}"


def test_expected_shape_with_nothing_to_compare_is_listed(hf: Callable[..., Path]) -> None:
    tensors = {"transformer.wte.weight": hf_tensors()["model.embed_tokens.weight"]}
    v = run(hf(tensors, model_type="gpt2"), expected_shape={"expected_hidden_dim": 32})
    # No known naming: nothing seen, and config.json hidden_size stands in.
    assert v["001"].passed is True
    assert v["001"].details["expected_not_compared"] == []
    v = run(
        hf(tensors, model_type="gpt2", hidden_size=None), expected_shape={"expected_hidden_dim": 32}
    )
    assert v["001"].passed is None
    assert v["001"].details["expected_not_compared"] == ["expected_hidden_dim"]
    assert "nothing to compare" in v["001"].reason


# --- G0-INTEGRITY-001: config vs shapes (safetensors) -----------------------------------


def test_config_says_three_layers_but_two_exist(hf: Callable[..., Path]) -> None:
    f = assert_only(run(hf(num_hidden_layers=3)), "001", skipped=("005",))
    assert f.reason.startswith(
        "config.json num_hidden_layers=3 but tensors hold 2 layers (model.layers.0..1)"
    )
    # The third layer's tensors are then missing, each named.
    assert (
        "missing tensor model.layers.2.self_attn.q_proj.weight (layer 2 q)" in f.details["problems"]
    )


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (
            {"vocab_size": 400},
            "config.json vocab_size=400 but model.embed_tokens.weight has 320 rows",
        ),
        (
            {"hidden_size": 48},
            "config.json hidden_size=48 but model.embed_tokens.weight is 32 wide",
        ),
        (
            {"num_key_value_heads": 4},
            "model.layers.0.self_attn.k_proj.weight has shape (16, 32), expected (32, 32) "
            "(4 kv heads × head_dim 8, hidden 32)",
        ),
        (
            # head_dim becomes 16, so the k/v projections hold half the heads claimed.
            {"num_attention_heads": 2},
            "model.layers.0.self_attn.k_proj.weight has shape (16, 32), expected (32, 32) "
            "(2 kv heads × head_dim 16, hidden 32)",
        ),
        (
            {"intermediate_size": 64},
            "model.layers.0.mlp.gate_proj.weight has shape (48, 32), expected (64, 32)",
        ),
        ({"num_attention_heads": 5}, "hidden size 32 is not divisible by config.json"),
        ({"hidden_size": "32"}, "config.json hidden_size='32' is not a positive integer"),
        ({"num_hidden_layers": 0}, "config.json num_hidden_layers=0 is not a positive integer"),
    ],
)
def test_config_disagreeing_with_tensors_falsifies_001(
    hf: Callable[..., Path], config: dict[str, Any], reason: str
) -> None:
    f = assert_only(run(hf(**config)), "001", skipped=("005",))
    assert f.reason.startswith(reason), f.reason


def test_head_dim_from_config_is_used(hf: Callable[..., Path]) -> None:
    assert run(hf(head_dim=HEAD_DIM))["001"].passed is True
    f = run(hf(head_dim=4))["001"]
    assert f.passed is False
    assert "expected (16, 32) (4 heads × head_dim 4, hidden 32)" in f.reason


@pytest.mark.parametrize(
    "name",
    ["model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight", "model.norm.weight"],
)
def test_missing_tensor_is_named(hf: Callable[..., Path], name: str) -> None:
    f = assert_only(run(hf(without(name))), "001", skipped=("005",))
    assert f.reason.startswith(f"missing tensor {name}")


def test_missing_lm_head_when_untied(hf: Callable[..., Path]) -> None:
    f = assert_only(run(hf(without("lm_head.weight"))), "001", skipped=("005",))
    assert f.reason.startswith("missing tensor lm_head.weight")
    # Tied embeddings need no lm_head; undeclared, llama's default (untied) applies.
    assert run(hf(without("lm_head.weight"), tie_word_embeddings=True))["001"].passed is True
    v = run(hf(without("lm_head.weight"), tie_word_embeddings=None))
    assert v["001"].passed is False


def test_lm_head_of_the_wrong_shape(hf: Callable[..., Path]) -> None:
    tensors = hf_tensors()
    tensors["lm_head.weight"] = tensors["lm_head.weight"][:-1]
    f = assert_only(run(hf(tensors)), "001", skipped=("005",))
    assert f.reason == (
        "lm_head.weight has shape (319, 32), expected (320, 32) (vocab 320, hidden 32)"
    )


def test_wrong_norm_and_bias_shapes(hf: Callable[..., Path]) -> None:
    tensors = hf_tensors()
    tensors["model.norm.weight"] = tensors["model.norm.weight"][:-1]
    tensors["model.layers.0.self_attn.q_proj.bias"] = np.ones(7, np.float32)
    f = assert_only(run(hf(tensors)), "001", skipped=("005",))
    assert f.details["problems"] == [
        "model.norm.weight has shape (31,), expected (32,) (hidden 32)",
        "model.layers.0.self_attn.q_proj.bias has shape (7,), expected (32,) "
        "(rows of its weight (32, 32))",
    ]
    tensors["model.norm.weight"] = np.ones(HIDDEN, np.float32)
    tensors["model.layers.0.self_attn.q_proj.bias"] = np.ones(32, np.float32)
    assert run(hf(tensors))["001"].passed is True


def test_layer_gap(hf: Callable[..., Path]) -> None:
    tensors = hf_tensors(layers=3)
    for name in [n for n in tensors if n.startswith("model.layers.1.")]:
        del tensors[name]
    f = assert_only(run(hf(tensors, num_hidden_layers=3)), "001", skipped=("005",))
    assert f.reason.startswith("layer indices have gaps: no tensors for model.layers.1")
    assert "config.json num_hidden_layers=3 but tensors hold 2 layers" in f.details["problems"][1]


def test_embedding_not_two_dimensional(hf: Callable[..., Path]) -> None:
    tensors = hf_tensors()
    tensors["model.embed_tokens.weight"] = tensors["model.embed_tokens.weight"].reshape(-1)
    f = assert_only(run(hf(tensors)), "001", skipped=("005",))
    assert f.reason.startswith("model.embed_tokens.weight has shape (10240,), expected 2 dim")


def test_missing_config_json(hf: Callable[..., Path]) -> None:
    path = hf()
    (path / "config.json").unlink()
    for artifact in (path, path / "model.safetensors"):
        f = run(artifact)["001"]
        assert f.passed is False
        assert f.reason.startswith(f"missing config.json in {path}")


def test_unknown_layout_compares_nothing(hf: Callable[..., Path]) -> None:
    tensors = {"transformer.h.0.attn.c_attn.weight": np.ones((4, 4), np.float32)}
    v = run(hf(tensors, model_type="gpt2", hidden_size=None, vocab_size=None))
    assert v["001"].passed is None
    assert "model type 'gpt2'" in v["001"].reason
    assert v["002"].passed is True  # the data is still scanned


# --- G0-INTEGRITY-001: GGUF metadata vs shapes ------------------------------------------


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ({"block_count": 3}, "GGUF llama.block_count=3 but tensors hold 2 layers (blk.0..1)"),
        ({"embedding_length": 64}, "GGUF llama.embedding_length=64 but token_embd.weight is 32"),
        ({"feed_forward_length": 64}, "blk.0.ffn_gate.weight has shape (48, 32), expected (64"),
        ({"attention.head_count_kv": 4}, "blk.0.attn_k.weight has shape (16, 32), expected (32"),
        ({"vocab_size": 300}, "GGUF llama.vocab_size=300 but token_embd.weight has 320 rows"),
        ({"attention.key_length": 4}, "blk.0.attn_q.weight has shape (32, 32), expected (16, 32)"),
    ],
)
def test_gguf_metadata_disagreeing_with_tensors(
    gg: Callable[..., Path], meta: dict[str, int], reason: str
) -> None:
    f = assert_only(run(gg(meta=meta)), "001")
    assert f.reason.startswith(reason), f.reason


def test_gguf_token_count_must_match_embedding_rows(gg: Callable[..., Path]) -> None:
    tensors = hf_tensors()
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        tensors[name] = np.concatenate([tensors[name], tensors[name][:16]])
    f = assert_only(run(gg(tensors)), "001")
    assert f.reason == (
        "GGUF tokenizer.ggml.tokens count=320 but token_embd.weight has 336 rows (shape (336, 32))"
    )


def test_gguf_missing_tensor_and_tied_output(gg: Callable[..., Path]) -> None:
    f = assert_only(run(gg(without("model.layers.0.self_attn.v_proj.weight"))), "001")
    assert f.reason == "missing tensor blk.0.attn_v.weight (layer 0 v)"
    # Without output.weight llama.cpp uses token_embd: not a defect.
    assert run(gg(without("lm_head.weight")))["001"].passed is True


def test_gguf_output_of_the_wrong_shape(gg: Callable[..., Path]) -> None:
    tensors = hf_tensors()
    tensors["lm_head.weight"] = tensors["lm_head.weight"][:, :16].copy()
    f = assert_only(run(gg(tensors)), "001")
    assert f.reason.startswith("output.weight has shape (320, 16), expected (320, 32)")


# --- G0-INTEGRITY-002 / 003: values --------------------------------------------------


def _nan(a: np.ndarray) -> np.ndarray:
    a.flat[[1, 5, 9]] = np.nan
    return a


def _inf(a: np.ndarray) -> np.ndarray:
    a.flat[0] = np.inf
    a.flat[1] = -np.inf
    return a


@pytest.mark.parametrize("fmt", ["hf", "gguf"])
def test_nan_and_inf_falsify_002(
    hf: Callable[..., Path], gg: Callable[..., Path], fmt: str
) -> None:
    build = hf if fmt == "hf" else gg
    skipped = ("005",) if fmt == "hf" else ()
    name = "model.layers.1.mlp.up_proj.weight"
    f = assert_only(run(build(edited(name, _nan))), "002", skipped=skipped)
    shown = name if fmt == "hf" else "blk.1.ffn_up.weight"
    assert f.reason == (
        f"1 of 21 tensor(s) hold NaN/Inf: 3 NaN, 0 Inf; first {shown} (3 NaN, 0 Inf)"
    )
    assert f.details["tensors"] == [shown]
    f = assert_only(run(build(edited(name, _inf))), "002", skipped=skipped)
    assert (f.details["nan"], f.details["inf"]) == (0, 2)


def test_many_nan_tensors_are_bounded_in_details(hf: Callable[..., Path]) -> None:
    tensors = {k: _nan(v.copy()) if v.ndim == 2 else v for k, v in hf_tensors().items()}
    f = run(hf(tensors))["002"]
    assert f.passed is False
    assert f.reason.startswith("16 of 21 tensor(s) hold NaN/Inf: 48 NaN, 0 Inf")
    assert len(f.details["tensors"]) == 10  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["hf", "gguf"])
def test_zeroed_norm_falsifies_003(
    hf: Callable[..., Path], gg: Callable[..., Path], fmt: str
) -> None:
    build = hf if fmt == "hf" else gg
    name = "model.layers.0.input_layernorm.weight"
    f = assert_only(
        run(build(edited(name, np.zeros_like))), "003", skipped=("005",) if fmt == "hf" else ()
    )
    shown = name if fmt == "hf" else "blk.0.attn_norm.weight"
    assert f.reason == f"1 of 21 tensor(s) are entirely zero (a zeroed norm weight): {shown}"
    assert f.details["norms"] == [shown]


def test_all_zero_matrix_and_negative_zero(hf: Callable[..., Path]) -> None:
    name = "model.layers.1.self_attn.o_proj.weight"
    f = assert_only(run(hf(edited(name, lambda a: np.full_like(a, -0.0)))), "003", skipped=("005",))
    assert f.reason == f"1 of 21 tensor(s) are entirely zero: {name}"
    assert f.details["norms"] == []


def test_one_nonzero_value_is_not_all_zero(hf: Callable[..., Path]) -> None:
    def nearly(a: np.ndarray) -> np.ndarray:
        out = np.zeros_like(a)
        out.flat[-1] = 1e-30
        return out

    assert run(hf(edited("model.norm.weight", nearly)))["003"].passed is True


def test_integer_and_empty_tensors_are_not_scanned(hf: Callable[..., Path]) -> None:
    tensors: dict[str, np.ndarray] = dict(hf_tensors())
    tensors["model.position_ids"] = np.zeros((1, 8), np.int64)
    tensors["model.unused"] = np.zeros((0,), np.float32)
    v = run(hf(tensors))
    assert v["003"].passed is True
    assert v["003"].details["not_float_or_undecodable"] == 2


def test_undecodable_dtype_is_left_out(hf: Callable[..., Path]) -> None:
    path = hf()
    header = json.dumps(
        {"model.scale_fp8": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}
    )
    blob = header.encode() + b" " * (-len(header) % 8)
    (path / "extra.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(4))
    v = run(path)
    assert v["002"].passed is True and v["003"].passed is True
    assert v["002"].details["not_float_or_undecodable"] == 1


def test_nothing_to_scan_is_skipped(hf: Callable[..., Path]) -> None:
    v = run(hf({"model.ids": np.arange(4, dtype=np.int32)}, model_type="gpt2"))
    assert v["002"].passed is None and v["003"].passed is None
    assert (
        v["002"].reason
        == "0 tensor(s) scanned without NaN or Inf; no floating-point tensor to scan"
    )


@pytest.mark.parametrize(("fmt", "container"), [("hf", "001"), ("gguf", "005")])
def test_tensor_unreadable_mid_stream(
    hf: Callable[..., Path],
    gg: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    container: str,
) -> None:
    from apr_qa.models.readers_gguf import GGUFModelReader
    from apr_qa.models.readers_safetensors import SafetensorsModelReader

    path = hf() if fmt == "hf" else gg()
    cls = SafetensorsModelReader if fmt == "hf" else GGUFModelReader
    real = cls._load
    seen: list[str] = []

    def flaky(self: Any, info: Any) -> np.ndarray:
        seen.append(info.name)
        if len(seen) == 3:
            raise UsageError(f"{path}: tensor {info.name!r} is truncated")
        return real(self, info)

    monkeypatch.setattr(cls, "_load", flaky)
    v = run(path)
    assert v[container].passed is False
    assert f"tensor data unreadable: {path}: tensor" in " ".join(v[container].details["problems"])
    for gate in ("002", "003"):
        assert v[gate].passed is None
        assert v[gate].reason.startswith("20 tensor(s) scanned without")
        assert f"1 tensor(s) unreadable (see G0-INTEGRITY-{container})" in v[gate].reason


# --- G0-INTEGRITY-004: tokenizer -------------------------------------------------------


def test_missing_tokenizer_files(hf: Callable[..., Path]) -> None:
    path = hf()
    (path / "tokenizer.json").unlink()
    f = assert_only(run(path), "004", skipped=("005",))
    assert f.reason == f"no tokenizer.json or tokenizer.model in {path}"
    (path / "tokenizer_config.json").unlink()
    f = run(path)["004"]
    assert f.details["problems"] == [
        f"no tokenizer.json or tokenizer.model in {path}",
        f"missing tokenizer_config.json in {path}",
    ]


def test_sentencepiece_model_file(hf: Callable[..., Path]) -> None:
    path = hf()
    (path / "tokenizer.json").unlink()
    (path / "tokenizer.model").write_bytes(b"")
    assert run(path)["004"].reason == f"{path / 'tokenizer.model'} is empty"
    (path / "tokenizer.model").write_bytes(b"\x0a\x05hello")
    assert run(path)["004"].passed is True


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("tokenizer.json", "{not json", "tokenizer.json does not load: Exception"),
        ("tokenizer_config.json", "{not json", "tokenizer_config.json is not valid JSON"),
        ("tokenizer_config.json", "[1, 2]", "tokenizer_config.json is not a JSON object"),
    ],
)
def test_broken_tokenizer_files(
    hf: Callable[..., Path], name: str, content: str, reason: str
) -> None:
    path = hf()
    (path / name).write_text(content, encoding="utf-8")
    f = assert_only(run(path), "004", skipped=("005",))
    assert reason in f.reason


def test_tokenizer_larger_than_embedding(hf: Callable[..., Path], tok: Path) -> None:
    vocab = json.loads((tok / "tokenizer.json").read_text())["model"]["vocab"]
    rows = len(vocab) - 10
    tensors = hf_tensors()
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        tensors[name] = tensors[name][:rows].copy()
    f = assert_only(run(hf(tensors, vocab_size=rows)), "004", skipped=("005",))
    assert f.reason.endswith(f"has {len(vocab) + 0} tokens but the embedding has only {rows} rows")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        (
            {"drop": ("tokenizer.ggml.merges",)},
            "GGUF BPE tokenizer (gpt2) has no tokenizer.ggml.merges",
        ),
        ({"drop": ("tokenizer.ggml.pre",)}, "GGUF BPE tokenizer (gpt2) has no tokenizer.ggml.pre"),
        ({"tokenizer_model": "none"}, "GGUF tokenizer.ggml.model is 'none'"),
        (
            {"drop": ("tokenizer.ggml.model", "tokenizer.ggml.tokens")},
            "GGUF tokenizer.ggml.model is None",
        ),
    ],
)
def test_gguf_tokenizer_defects(
    gg: Callable[..., Path], kwargs: dict[str, Any], reason: str
) -> None:
    v = run(gg(**kwargs))
    assert v["004"].passed is False
    assert v["004"].reason.startswith(reason), v["004"].reason
    assert v["005"].passed is True


def test_gguf_token_arrays_and_ids_checked(gg: Callable[..., Path], tmp_path: Path) -> None:
    import gguf

    from apr_qa.testing.mutants_io import rewrite_gguf

    clean = gg()
    broken = rewrite_gguf(
        clean,
        tmp_path / "b.gguf",
        set_keys={"tokenizer.ggml.token_type": [1, 1, 1], "tokenizer.ggml.eos_token_id": VOCAB},
    )
    f = run(broken)["004"]
    assert f.details["problems"] == [
        f"GGUF tokenizer.ggml.token_type has 3 entries for {VOCAB} tokens",
        f"GGUF tokenizer.ggml.eos_token_id={VOCAB} is outside the {VOCAB} tokens",
    ]
    assert gguf.GGUFReader(clean).fields["tokenizer.ggml.eos_token_id"].contents() < VOCAB


# --- G0-INTEGRITY-005 and unreadable artifacts --------------------------------------------


def test_bad_magic_falsifies_005_and_skips_the_rest(gg: Callable[..., Path]) -> None:
    path = gg()
    data = bytearray(path.read_bytes())
    data[:4] = b"GGUX"
    path.write_bytes(bytes(data))
    v = run(path)
    assert v["005"].passed is False
    assert v["005"].reason == f"{path}: not a GGUF file (bad magic b'GGUX')"
    for gate in ("001", "002", "003", "004"):
        assert v[gate].passed is None
        assert v[gate].reason == "not checked: the artifact could not be read (G0-INTEGRITY-005)"


def test_truncated_gguf_falsifies_005(gg: Callable[..., Path]) -> None:
    path = gg()
    path.write_bytes(path.read_bytes()[:-100])
    f = assert_only(run(path), "005", skipped=("001", "002", "003", "004"))
    assert "GGUF tensor data truncated" in f.reason


def test_truncated_safetensors_falsifies_001_and_still_judges_tokenizer(
    hf: Callable[..., Path],
) -> None:
    path = hf()
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    v = run(path)
    assert v["001"].passed is False and str(weights) in v["001"].reason
    assert "past the end of the file" in v["001"].reason
    assert v["002"].passed is None and v["003"].passed is None
    assert v["004"].passed is True
    assert v["005"].reason == "not a GGUF artifact"


def test_truncated_single_safetensors_file(hf: Callable[..., Path]) -> None:
    weights = hf() / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5])
    v = run(weights)
    assert v["001"].passed is False and "too short" in v["001"].reason
    assert v["004"].passed is True  # tokenizer files beside the file


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        (("general.architecture",), "GGUF general.architecture is missing or not a string (None)"),
        (("llama.block_count",), "GGUF metadata has no llama.block_count"),
        (("llama.context_length",), "GGUF metadata has no llama.context_length"),
    ],
)
def test_gguf_missing_required_metadata(
    gg: Callable[..., Path], drop: tuple[str, ...], reason: str
) -> None:
    path = gg(drop=drop)
    v = run(path)
    assert v["005"].passed is False
    assert v["005"].reason == f"{path}: {reason}"


def test_gguf_without_tensors(gg: Callable[..., Path]) -> None:
    path = gg({})
    v = run(path)
    assert f"{path}: GGUF file holds no tensor" in v["005"].details["problems"]
    assert "missing tensor token_embd.weight (token embedding)" in v["001"].details["problems"]
    assert v["002"].passed is None


def test_gguf_misaligned_tensor(gg: Callable[..., Path]) -> None:
    path = gg()
    field = tensor_offset_field(path, "blk.1.ffn_norm.weight")
    data = bytearray(path.read_bytes()) + bytes(64)
    offset = int.from_bytes(data[field : field + 8], "little")
    data[field : field + 8] = (offset + 4).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    v = run(path)
    assert v["005"].passed is False
    assert v["005"].reason.endswith(
        "1 tensor(s) not aligned to 32 bytes, first blk.1.ffn_norm.weight"
    )


def test_gguf_overlapping_tensor_data(gg: Callable[..., Path]) -> None:
    path = gg()
    data = bytearray(path.read_bytes())
    a = tensor_offset_field(path, "blk.1.ffn_norm.weight")
    b = tensor_offset_field(path, "blk.1.attn_norm.weight")
    data[a : a + 8] = data[b : b + 8]
    path.write_bytes(bytes(data))
    v = run(path)
    assert v["005"].passed is False
    assert "GGUF tensor data overlaps: " in v["005"].reason
    assert "blk.1.ffn_norm.weight" in v["005"].reason


def test_missing_path_is_an_environment_problem(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="model artifact not found"):
        check_integrity(tmp_path / "nope")


def test_directory_without_weights_is_evidence(tmp_path: Path, tok: Path) -> None:
    directory = tmp_path / "empty"
    shutil.copytree(tok, directory)
    v = run(directory)
    assert v["001"].passed is False and "no weights" in v["001"].reason
    assert v["004"].passed is True


def test_quantized_gguf_is_dequantized_for_the_scan(tmp_path: Path, tok: Path) -> None:
    import gguf

    q8 = gguf.GGMLQuantizationType.Q8_0
    tensors = {gguf_name(k): v for k, v in hf_tensors().items()}

    def write(name: str, edit: Callable[[np.ndarray], None] | None = None) -> Path:
        path = tmp_path / name
        # The builder's f32 file, its matrices requantized to q8_0.
        clean = write_gguf(tmp_path / "f32.gguf", tok, tensors)
        writer = gguf.GGUFWriter(str(path), "llama")
        reader = gguf.GGUFReader(clean)
        for f in reader.fields.values():
            if f.name.startswith("GGUF.") or f.name == "general.architecture":
                continue
            sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(f.name, f.contents(), f.types[0], sub_type=sub)
        for t in reader.tensors:
            data = np.array(t.data)
            if data.ndim == 2 and data.shape[1] % 32 == 0:
                blocks = gguf.quants.quantize(data, q8)
                if edit is not None and t.name == "blk.0.ffn_up.weight":
                    edit(blocks)
                writer.add_tensor(t.name, blocks, raw_shape=blocks.shape, raw_dtype=q8)
            else:
                writer.add_tensor(t.name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path

    def nan_scale(blocks: np.ndarray) -> None:
        blocks[0, :2] = np.array([np.nan], "<f2").view(np.uint8)  # first block's f16 scale

    def zero_scales(blocks: np.ndarray) -> None:
        blocks.reshape(-1, 34)[:, :2] = 0  # every block: scale 0

    clean = write("clean.gguf")
    assert (
        sum(t.tensor_type == q8 for t in gguf.GGUFReader(clean).tensors) == 14
    )  # all matrices but ffn_down (48 wide)
    assert all(f.passed for f in check_integrity(clean))
    f = assert_only(run(write("nan.gguf", nan_scale)), "002")
    assert f.reason.endswith("first blk.0.ffn_up.weight (32 NaN, 0 Inf)")
    f = assert_only(run(write("zero.gguf", zero_scales)), "003")
    assert f.reason == "1 of 21 tensor(s) are entirely zero: blk.0.ffn_up.weight"
