"""The reference converter on gemma2 and phi3 with SentencePiece vocabularies.

Tiny random checkpoints (:mod:`spm_checkpoints`) are built and converted once per
module. Each GGUF is checked against transformers on the same checkpoint (logits
through the logit comparison's statistics, ids through the tokenizer parity check,
tensors through the tensor diff), against llama.cpp's own converter on the same
checkpoint (tensors, vocabulary arrays, hyperparameters), and a deliberately broken
conversion of each is shown to be caught by the same checks.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from lazy_conversions import lazy_conversions
from spm_checkpoints import SPM_SPECS, build_spm_checkpoint

from apr_qa.checks import logit_compare, tensor_diff, tokenizer_parity
from apr_qa.checks.differential import Pair, Switch
from apr_qa.checks.finding import Ledger
from apr_qa.errors import UsageError
from apr_qa.models import convert as convert_module
from apr_qa.models.architectures import ARCHITECTURES
from apr_qa.models.convert import SUPPORTED_ARCHITECTURES, convert
from apr_qa.testing.llama_cpp_converter import convert_with_llama_cpp

TEXTS = [
    "What is 12 + 30? The capital of France is Paris. def f(x):\n    return x * 3",
    "  leading,   runs   of\t\ttabs\n\nand Café naïve déjà vu in  Zürich 🙂",
]
# Tokenizer keys llama.cpp's converter writes that this one does not: llama.cpp reads
# no add_sep_token for a SentencePiece vocabulary, and uses the mask id only for
# encoder models.
NOT_WRITTEN = {"tokenizer.ggml.add_sep_token", "tokenizer.ggml.mask_token_id"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spm")
    return {key: build_spm_checkpoint(root / key, spec) for key, spec in SPM_SPECS.items()}


@pytest.fixture(scope="module")
def converted(
    checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], Path]:
    """Convert lazily, once per (model, quant), shared by the module."""
    return lazy_conversions(checkpoints, tmp_path_factory.mktemp("spm-gguf"))


def _fields(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return fields, {t.name: t for t in reader.tensors}


def _config(src: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((src / "config.json").read_text())
    return loaded


def _source(src: Path) -> dict[str, np.ndarray[Any, Any]]:
    from safetensors.numpy import load_file

    return dict(load_file(src / "model.safetensors"))


def test_gemma2_and_phi3_are_supported() -> None:
    assert {"Gemma2ForCausalLM", "Phi3ForCausalLM"} <= set(SUPPORTED_ARCHITECTURES)


def test_gemma2_metadata_and_tensors(
    converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    src = checkpoints["gemma2"]
    config, source = _config(src), _source(src)
    fields, tensors = _fields(converted("gemma2", "f32"))
    assert fields["general.architecture"] == "gemma2"
    assert fields["gemma2.attention.key_length"] == config["head_dim"]
    assert fields["gemma2.attention.value_length"] == config["head_dim"]
    assert fields["gemma2.attn_logit_softcapping"] == config["attn_logit_softcapping"]
    assert fields["gemma2.final_logit_softcapping"] == config["final_logit_softcapping"]
    assert fields["gemma2.attention.sliding_window"] == config["sliding_window"]
    assert fields["gemma2.context_length"] == config["max_position_embeddings"]
    assert fields["tokenizer.ggml.model"] == "llama"
    assert fields["tokenizer.ggml.add_space_prefix"] is False
    assert "output.weight" not in tensors  # tied: llama.cpp's gemma2 reuses token_embd
    # Every norm is stored as the scale, 1 + w; other tensors as they are.
    norms = [n for n in source if n.endswith("norm.weight")]
    assert len(norms) == 4 * config["num_hidden_layers"] + 1
    for name, want in source.items():
        gguf_name = ARCHITECTURES["gemma2"].gguf_name(name)
        assert gguf_name is not None
        got = np.asarray(tensors[gguf_name].data).reshape(want.shape)
        expected = want + 1 if name in norms else want
        np.testing.assert_array_equal(got, expected.astype(np.float32), err_msg=name)


def test_phi3_metadata_and_tensors(
    converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    src = checkpoints["phi3"]
    config, source = _config(src), _source(src)
    fields, tensors = _fields(converted("phi3", "f32"))
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    assert fields["general.architecture"] == "phi3"
    assert fields["phi3.rope.dimension_count"] == head_dim
    assert fields["phi3.rope.scaling.original_context_length"] == 256
    assert fields["phi3.attention.sliding_window"] == 0  # none: llama.cpp's convention
    assert fields["tokenizer.ggml.add_space_prefix"] is True  # the model's add_dummy_prefix
    assert fields["tokenizer.ggml.add_bos_token"] is False  # this tokenizer adds none
    qkv = np.asarray(tensors["blk.0.attn_qkv.weight"].data)
    np.testing.assert_array_equal(qkv, source["model.layers.0.self_attn.qkv_proj.weight"])
    gate_up = np.asarray(tensors["blk.1.ffn_up.weight"].data)
    np.testing.assert_array_equal(gate_up, source["model.layers.1.mlp.gate_up_proj.weight"])
    assert "output.weight" in tensors  # phi3 is untied


def test_sentencepiece_vocabulary(
    converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    import sentencepiece as spm

    for key in SPM_SPECS:
        src = checkpoints[key]
        fields, _ = _fields(converted(key, "f32"))
        tokens = fields["tokenizer.ggml.tokens"]
        types = fields["tokenizer.ggml.token_type"]
        scores = fields["tokenizer.ggml.scores"]
        n_vocab = _config(src)["vocab_size"]
        assert len(tokens) == len(types) == len(scores) == n_vocab
        sp = spm.SentencePieceProcessor(model_file=str(src / "tokenizer.model"))
        added = {
            a["id"]: a for a in json.loads((src / "tokenizer.json").read_text())["added_tokens"]
        }
        for i in range(n_vocab):
            if i in added:
                want = (added[i]["content"], gguf.TokenType.CONTROL, -1000.0)
            elif i >= sp.vocab_size():
                want = (f"[PAD{i}]", gguf.TokenType.UNUSED, -10000.0)
            else:
                kind = gguf.TokenType.BYTE if sp.IsByte(i) else gguf.TokenType.NORMAL
                want = (sp.IdToPiece(i), kind, sp.GetScore(i))
            assert (tokens[i], types[i]) == want[:2], (key, i)
            assert scores[i] == pytest.approx(want[2]), (key, i)


# --- against llama.cpp's own converter ------------------------------------------------


@pytest.fixture(scope="module")
def llama_cpp_converted(
    checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llama-cpp-gguf")
    return {
        key: convert_with_llama_cpp(src, root / f"{key}.gguf", "f32")
        for key, src in checkpoints.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("key", list(SPM_SPECS))
def test_same_file_as_llama_cpp_converter(
    key: str, converted: Callable[[str, str], Path], llama_cpp_converted: dict[str, Path]
) -> None:
    ours, our_tensors = _fields(converted(key, "f32"))
    theirs, their_tensors = _fields(llama_cpp_converted[key])
    assert sorted(our_tensors) == sorted(their_tensors)
    for name, theirs_t in their_tensors.items():
        ours_t = our_tensors[name]
        assert list(ours_t.shape) == list(theirs_t.shape), name
        assert ours_t.tensor_type == theirs_t.tensor_type, name
        np.testing.assert_array_equal(np.asarray(ours_t.data), np.asarray(theirs_t.data), name)
    for array in ("tokens", "scores", "token_type"):
        assert ours[f"tokenizer.ggml.{array}"] == theirs[f"tokenizer.ggml.{array}"], array
    # Every hyperparameter and tokenizer key llama.cpp's converter writes, with its value.
    wanted = [k for k in theirs if k.startswith((f"{key}.", "tokenizer.")) and k not in NOT_WRITTEN]
    assert len(wanted) > 12
    for name in wanted:
        assert name in ours, name
        assert ours[name] == pytest.approx(theirs[name]), name


# --- against transformers -------------------------------------------------------------


def _hf(src: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(src)


def _kl(src: Path, gguf_path: Path) -> logit_compare.LogitStats:
    """Teacher-forced logits of both runtimes on TEXTS, pooled into the logit
    comparison's statistics (F-ROSETTA-INF-001/002)."""
    import llama_cpp
    import torch

    model, tok = _hf(src)
    # An f32 KV cache: llama.cpp's default f16 cache alone would blur small errors.
    llm = llama_cpp.Llama(
        model_path=str(gguf_path), n_ctx=256, logits_all=True, verbose=False, n_threads=2,
        type_k=0, type_v=0,
    )  # fmt: skip
    runs = []
    for text in TEXTS:
        ids = list(tok(text)["input_ids"])
        with torch.no_grad():
            want = model(torch.tensor([ids])).logits[0].numpy()
        llm.reset()
        llm.eval(ids)
        runs.append((want, np.array(llm.scores[: len(ids)], dtype=np.float32), ids))
    llm.close()
    return logit_compare.kl_stats(runs)


def _within_limits(stats: logit_compare.LogitStats, quant: str) -> bool:
    return stats.same_top1 >= logit_compare.limit(
        None, quant, "top1"
    ) and stats.kl_mean <= logit_compare.limit(None, quant, "kl")


@pytest.mark.slow
@pytest.mark.parametrize(("key", "quant"), [(k, q) for k in SPM_SPECS for q in ("f32", "q8_0")])
def test_logits_agree_with_transformers(
    key: str, quant: str, converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    stats = _kl(checkpoints[key], converted(key, quant))
    assert stats.positions > 40
    assert _within_limits(stats, quant), stats
    if quant == "f32":
        # Measured: KL 4e-8 (gemma2), 7e-13 (phi3); every top-1 the same.
        assert stats.kl_max < 1e-5 and stats.same_top1 == 1.0, stats


@pytest.mark.slow
@pytest.mark.parametrize("key", list(SPM_SPECS))
def test_tokenizer_parity_holds(
    key: str, converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    src = checkpoints[key]
    _, tok = _hf(src)
    texts = [*tokenizer_parity.PROBES, *TEXTS]
    want = {t: list(tok(t)["input_ids"]) for t in texts}
    ledgers = {gate: Ledger(gate) for gate in tokenizer_parity.GATES}
    pair = Pair(src, converted(key, "f32"), "f32")
    assert tokenizer_parity.compare_pair(pair, Switch(True, None, {}, {}), want, ledgers) == []
    for gate, ledger in ledgers.items():
        finding = ledger.finding(passed="ok", skipped="skipped")
        assert finding.passed is True, (gate, finding.reason)


def _tensor_diff(src: Path, gguf_path: Path, quant: str) -> dict[str, Any]:
    ledgers = {gate: Ledger(gate) for gate in tensor_diff.GATES}
    rows = tensor_diff.diff_pair(Pair(src, gguf_path, quant), Switch(True, None, {}, {}), ledgers)
    assert rows
    return {g: led.finding(passed="ok", skipped="skipped") for g, led in ledgers.items()}


@pytest.mark.parametrize(("key", "quant"), [(k, q) for k in SPM_SPECS for q in ("f32", "q8_0")])
def test_tensor_diff_corroborates_a_clean_conversion(
    key: str, quant: str, converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    for gate, finding in _tensor_diff(checkpoints[key], converted(key, quant), quant).items():
        assert finding.passed is True, (gate, finding.reason)


# --- broken conversions are caught -----------------------------------------------------


@pytest.fixture(scope="module")
def broken(
    checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """gemma2 converted without the norm offset; phi3 with its fused qkv's q and k rows
    permuted for llama's rotary layout (treating phi3 like llama)."""
    from apr_qa.models.rotary import permute_qk

    root = tmp_path_factory.mktemp("spm-broken")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        gemma2 = ARCHITECTURES["gemma2"]
        no_offset = dataclasses.replace(gemma2, norm_offset=0.0)
        mp.setitem(convert_module._CONVERTIBLE, "Gemma2ForCausalLM", no_offset)
        out["gemma2"] = convert(checkpoints["gemma2"], root / "gemma2.gguf", "f32")
    config = _config(checkpoints["phi3"])
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    q_rows = config["hidden_size"]
    k_rows = q_rows // heads * kv
    real_read = convert_module.read_tensor

    def read_permuted(tensor: Any) -> np.ndarray[Any, Any]:
        data = real_read(tensor)
        if tensor.name.endswith("qkv_proj.weight"):
            q, k, v = np.split(data, [q_rows, q_rows + k_rows])
            data = np.concatenate([permute_qk(q, heads), permute_qk(k, kv), v])
        return data

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(convert_module, "read_tensor", read_permuted)
        out["phi3"] = convert(checkpoints["phi3"], root / "phi3.gguf", "f32")
    return out


@pytest.mark.parametrize("key", list(SPM_SPECS))
def test_tensor_diff_catches_the_broken_conversion(
    key: str, broken: dict[str, Path], checkpoints: dict[str, Path]
) -> None:
    found = _tensor_diff(checkpoints[key], broken[key], "f32")
    # gemma2: values (003) on the norms; phi3: the layout (001) inside the fused qkv,
    # whose values then match once the permutation is undone.
    gate, named = (2, "norm") if key == "gemma2" else (0, "attn_qkv.weight rows are permuted")
    finding = found[tensor_diff.GATES[gate]]
    assert finding.passed is False
    assert named in finding.reason, finding.reason


@pytest.mark.slow
@pytest.mark.parametrize("key", list(SPM_SPECS))
def test_logit_comparison_catches_the_broken_conversion(
    key: str, broken: dict[str, Path], checkpoints: dict[str, Path]
) -> None:
    stats = _kl(checkpoints[key], broken[key])
    assert not _within_limits(stats, "f32"), stats


# --- configs llama.cpp cannot represent ----------------------------------------------


def _with_config(src: Path, dst: Path, **changes: Any) -> Path:
    shutil.copytree(src, dst)
    config = _config(dst)
    config.update(changes)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.mark.parametrize(
    ("key", "changes", "message"),
    [
        ("gemma2", {"query_pre_attn_scalar": 32}, "query_pre_attn_scalar 32 differs from head_dim"),
        ("gemma2", {"tie_word_embeddings": False}, "always uses the token embedding"),
        ("gemma2", {"final_logit_softcapping": None}, "always soft-caps"),
        ("gemma2", {"hidden_activation": "silu"}, "activation 'silu' is not gelu_pytorch_tanh"),
        (
            "gemma2",
            {"layer_types": ["full_attention", "sliding_attention"]},
            "not Gemma 2's alternation",
        ),
        (
            "phi3",
            {"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}},
            "rope type 'longrope'.*not supported",
        ),
        ("phi3", {"hidden_act": "gelu_pytorch_tanh"}, "is not silu"),
    ],
)
def test_unrepresentable_config_is_a_usage_error(
    key: str,
    changes: dict[str, Any],
    message: str,
    checkpoints: dict[str, Path],
    tmp_path: Path,
) -> None:
    src = _with_config(checkpoints[key], tmp_path / key, **changes)
    with pytest.raises(UsageError, match=message):
        convert(src, tmp_path / "x.gguf", "f32")
    assert not (tmp_path / "x.gguf").exists()


def test_phi3_vocabulary_without_endoftext_is_a_usage_error(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    src = shutil.copytree(checkpoints["phi3"], tmp_path / "phi3")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        text = (src / name).read_text().replace("<|endoftext|>", "<|eot|>")
        (src / name).write_text(text)
    with pytest.raises(UsageError, match=r"no <\|endoftext\|>.*phi3 vocabulary loader"):
        convert(src, tmp_path / "x.gguf", "f32")


@pytest.mark.slow
def test_tokenizer_parity_catches_a_wrong_space_prefix(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why gemma2's add_space_prefix is forced false: written true, llama.cpp prefixes
    a space that Gemma's tokenizer does not, and the parity check sees it."""
    import apr_qa.models.gguf_tokenizer as gguf_tokenizer

    real = gguf_tokenizer.read_tokenizer

    def prefixed(src: Path, n_vocab: int, *, add_space_prefix: bool | None = None) -> Any:
        return real(src, n_vocab, add_space_prefix=True)

    monkeypatch.setattr(gguf_tokenizer, "read_tokenizer", prefixed)
    src = checkpoints["gemma2"]
    path = convert(src, tmp_path / "prefixed.gguf", "f32")
    _, tok = _hf(src)
    want = {t: list(tok(t)["input_ids"]) for t in TEXTS}
    ledgers = {gate: Ledger(gate) for gate in tokenizer_parity.GATES}
    tokenizer_parity.compare_pair(Pair(src, path, "f32"), Switch(True, None, {}, {}), want, ledgers)
    ids = ledgers[tokenizer_parity.GATES[0]].finding(passed="ok", skipped="skipped")
    assert ids.passed is False and "tokenizes differently" in ids.reason, ids.reason


def test_gemma2_config_without_tie_key_is_tied_by_default(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    src = shutil.copytree(checkpoints["gemma2"], tmp_path / "gemma2")
    config = _config(src)
    del config["tie_word_embeddings"]  # transformers' Gemma2 default: tied
    (src / "config.json").write_text(json.dumps(config))
    _, tensors = _fields(convert(src, tmp_path / "x.gguf", "f32"))
    assert "token_embd.weight" in tensors and "output.weight" not in tensors
