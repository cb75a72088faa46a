"""The reference GGUF converter, against tiny random checkpoints built here.

Each checkpoint has random norms and biases (so a dropped bias or norm shows), a
byte-level BPE tokenizer trained on the spot with its architecture's pre-tokenizer,
and is converted once per module. What comes back is read with gguf's reader and
run in llama.cpp, and compared with transformers on the same checkpoint.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from click.testing import CliRunner
from lazy_conversions import lazy_conversions

from apr_qa.cli import cli
from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.models.convert import (
    SUPPORTED_ARCHITECTURES,
    SUPPORTED_QUANTS,
    convert,
    convert_with_report,
)

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CORPUS = [
    "What is 2 + 2? 4. What is 3 + 5? 8. What is 12 + 30? 42. 1234567890 2024",
    "The capital of France is Paris. The capital of Japan is Tokyo.",
    "def add(a, b):\n    return a + b\n",
    "Hello! How are you today? I'm fine, thanks. We'll see what they've done.",
]
# Chosen to tell the pre-tokenizers apart with these vocabularies: digit runs
# (llama-bpe groups 3, qwen2 splits 1, gpt-2 keeps the leading space), punctuation
# before letters ("(a" is one llama-bpe/qwen2 piece, two gpt-2 pieces).
PROBES = [
    "What is 2 + 2?",
    "1234567890 12345",
    "What is 12 + 30?",
    "def add(a, b):\n    return a + b",
    "The capital of France is",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Spec:
    """One tiny checkpoint to build."""

    arch: str  # HF architectures[0]
    pre: str  # the tokenizer.ggml.pre this tokenizer must get
    hidden: int = 64
    ffn: int = 96
    heads: int = 4
    kv_heads: int = 2
    tied: bool = False
    dtype: str = "float32"
    vocab: int = 320
    bos: bool = False


SPECS = {
    "llama": Spec("LlamaForCausalLM", "llama-bpe", bos=True),
    "mistral": Spec("MistralForCausalLM", "gpt-2", kv_heads=4),
    "qwen2": Spec("Qwen2ForCausalLM", "qwen2", tied=True),
}


def _train_tokenizer(out: Path, spec: Spec) -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=spec.pre == "gpt-2")
    if spec.pre == "gpt-2":
        tok.pre_tokenizer = byte_level
    else:
        split = LLAMA3_SPLIT if spec.pre == "llama-bpe" else QWEN2_SPLIT
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(split), behavior="isolated"), byte_level]
        )
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab - 8,  # leave unused rows: the embedding is padded
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    if spec.bos:
        bos_id = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos_id)]
        )
    tok.save(str(out / "tokenizer.json"))
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "chat_template": CHAT_TEMPLATE,
    }
    if spec.bos:
        config["bos_token"] = "<|begin_of_text|>"
    (out / "tokenizer_config.json").write_text(json.dumps(config))


def build_checkpoint(out: Path, spec: Spec, seed: int = 0) -> Path:
    """Write a random-initialised HF checkpoint (weights, config, tokenizer) to ``out``."""
    import torch
    import transformers

    out.mkdir(parents=True, exist_ok=True)
    _train_tokenizer(out, spec)
    config_cls = getattr(transformers, spec.arch.replace("ForCausalLM", "Config"))
    config = config_cls(
        vocab_size=spec.vocab,
        hidden_size=spec.hidden,
        intermediate_size=spec.ffn,
        num_hidden_layers=2,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=256,
        tie_word_embeddings=spec.tied,
        rms_norm_eps=1e-5,
        eos_token_id=0,
        pad_token_id=0,
        bos_token_id=3 if spec.bos else None,
    )
    torch.manual_seed(seed)
    model = getattr(transformers, spec.arch)(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1 and "norm" in name:
                param.copy_(1.0 + 0.3 * torch.randn_like(param))
            else:
                # Wider than the default init, so logits are far apart and argmax is stable.
                param.copy_(0.15 * torch.randn_like(param))
    model.to(getattr(torch, spec.dtype)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {key: build_checkpoint(root / key, spec) for key, spec in SPECS.items()}


@pytest.fixture(scope="module")
def converted(
    checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], Path]:
    """Convert lazily, once per (model, quant), shared by the module."""
    return lazy_conversions(checkpoints, tmp_path_factory.mktemp("gguf"))


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    field = reader.fields[key]
    return field.contents()


def _source_tensors(src: Path) -> dict[str, np.ndarray[Any, Any]]:
    import torch
    from safetensors.torch import load_file

    return {k: v.to(torch.float32).numpy() for k, v in load_file(src / "model.safetensors").items()}


def _interleave_rotary(w: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """Expected llama.cpp row order: within each head, row i of the first half then
    row i of the second half (written as index arithmetic, independent of the code)."""
    d = w.shape[0] // heads
    order = [
        h * d + half * (d // 2) + i for h in range(heads) for i in range(d // 2) for half in (0, 1)
    ]
    return w[order]


# --- metadata and tensors -------------------------------------------------------------


@pytest.mark.parametrize("key", list(SPECS))
def test_metadata_matches_config(
    key: str, converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    spec = SPECS[key]
    reader = gguf.GGUFReader(converted(key, "f32"))
    arch = "qwen2" if key == "qwen2" else "llama"
    assert _field(reader, "general.architecture") == arch
    assert _field(reader, f"{arch}.vocab_size") == spec.vocab
    assert _field(reader, f"{arch}.embedding_length") == spec.hidden
    assert _field(reader, f"{arch}.block_count") == 2
    assert _field(reader, f"{arch}.feed_forward_length") == spec.ffn
    assert _field(reader, f"{arch}.attention.head_count") == spec.heads
    assert _field(reader, f"{arch}.attention.head_count_kv") == spec.kv_heads
    assert _field(reader, f"{arch}.context_length") == 256
    assert _field(reader, f"{arch}.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)
    config = json.loads((checkpoints[key] / "config.json").read_text())
    theta = (config.get("rope_parameters") or {}).get("rope_theta", config.get("rope_theta"))
    assert _field(reader, f"{arch}.rope.freq_base") == pytest.approx(theta)
    assert _field(reader, f"{arch}.rope.dimension_count") == spec.hidden // spec.heads
    assert _field(reader, "general.file_type") == 0
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.ggml.pre") == spec.pre
    assert len(_field(reader, "tokenizer.ggml.tokens")) == spec.vocab
    assert _field(reader, "tokenizer.ggml.eos_token_id") == 0
    assert _field(reader, "tokenizer.ggml.add_bos_token") is spec.bos
    assert _field(reader, "tokenizer.chat_template") == CHAT_TEMPLATE
    types = _field(reader, "tokenizer.ggml.token_type")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert types[tokens.index("<|im_end|>")] == gguf.TokenType.CONTROL
    assert types[-1] == gguf.TokenType.UNUSED  # padded embedding rows
    assert types[tokens.index("a")] == gguf.TokenType.NORMAL
    assert len(_field(reader, "tokenizer.ggml.merges")) > 0


@pytest.mark.parametrize("key", list(SPECS))
def test_f32_tensors_are_exact_and_qk_permuted_for_llama_only(
    key: str, converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    spec = SPECS[key]
    reader = gguf.GGUFReader(converted(key, "f32"))
    got = {
        t.name: np.asarray(t.data).reshape(tuple(reversed(t.shape.tolist())))
        for t in reader.tensors
    }
    src = _source_tensors(checkpoints[key])
    name_map = gguf.get_tensor_name_map(
        gguf.MODEL_ARCH.QWEN2 if key == "qwen2" else gguf.MODEL_ARCH.LLAMA, 2
    )
    expected_names = set()
    for hf_name, data in src.items():
        name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert name is not None
        if name == "output.weight" and spec.tied:
            continue
        expected_names.add(name)
        want = data
        if key != "qwen2" and ".attn_q." in name:
            want = _interleave_rotary(data, spec.heads)
        elif key != "qwen2" and ".attn_k." in name:
            want = _interleave_rotary(data, spec.kv_heads)
        np.testing.assert_array_equal(got[name], want, err_msg=name)
    assert set(got) == expected_names
    assert ("output.weight" in got) is (not spec.tied)
    if key == "qwen2":
        assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= set(got)


# Max |error| of a dequantized tensor, as a fraction of the tensor's max |value|:
# half a quantization step, plus clipping at the top code for the symmetric 4/5-bit types.
QUANT_TOLERANCE = {
    "f16": 1e-3,
    "bf16": 8e-3,
    "q8_0": 1 / 127 + 1e-3,
    "q5_1": 1 / 31 + 1e-3,
    "q5_0": 1 / 16 + 1e-3,
    "q4_1": 1 / 15 + 1e-3,
    "q4_0": 1 / 8 + 1e-3,
}


@pytest.mark.parametrize("quant", list(QUANT_TOLERANCE))
def test_simple_quants_dequantize_close_to_source(
    quant: str, converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    reader = gguf.GGUFReader(converted("qwen2", quant))
    src = _source_tensors(checkpoints["qwen2"])
    wanted = gguf.GGMLQuantizationType[quant.upper()]
    assert _field(reader, "general.file_type") == int(gguf.LlamaFileType[f"MOSTLY_{quant.upper()}"])
    by_name = {t.name: t for t in reader.tensors}
    embd = by_name["token_embd.weight"]
    assert embd.tensor_type == wanted
    assert by_name["output_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert by_name["blk.0.attn_q.bias"].tensor_type == gguf.GGMLQuantizationType.F32
    source = src["model.embed_tokens.weight"]
    values = gguf.quants.dequantize(embd.data, embd.tensor_type).reshape(source.shape)
    error = np.abs(values - source).max() / np.abs(source).max()
    assert 0 < error <= QUANT_TOLERANCE[quant]


def test_row_not_multiple_of_block_falls_back_and_is_reported(tmp_path: Path) -> None:
    # With ffn 80, gate/up rows are 64 long (fine for q8_0's 32-blocks) but ffn_down's
    # rows are 80 long, 2.5 blocks, so that tensor alone must fall back.
    src = build_checkpoint(tmp_path / "odd", Spec("LlamaForCausalLM", "llama-bpe", ffn=80))
    report = convert_with_report(src, tmp_path / "odd.gguf", "q8_0")
    assert report.tensor_types["blk.0.ffn_down.weight"] == "F16"
    assert report.tensor_types["blk.0.ffn_up.weight"] == "Q8_0"
    assert any("blk.0.ffn_down.weight" in note for note in report.fallbacks)
    assert not any("ffn_up" in note for note in report.fallbacks)


def test_conversion_holds_one_source_tensor_at_a_time(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import weakref

    import apr_qa.models.convert as convert_module

    alive = [0]
    seen_alive_at_read: list[int] = []
    real_read = convert_module.read_tensor

    def release() -> None:
        alive[0] -= 1

    def tracking_read(tensor: Any) -> Any:
        seen_alive_at_read.append(alive[0])
        data = real_read(tensor)
        alive[0] += 1
        weakref.finalize(data, release)
        return data

    monkeypatch.setattr(convert_module, "read_tensor", tracking_read)
    # f32: the array written is the array read, so a writer that kept tensors until
    # the end (GGUFWriter.add_tensor) would keep every one of them alive here.
    convert(checkpoints["llama"], tmp_path / "stream.gguf", "f32")
    assert len(seen_alive_at_read) > 10
    assert max(seen_alive_at_read) == 0  # each tensor was released before the next read
    assert alive[0] == 0


# --- llama.cpp ------------------------------------------------------------------------


def _llama(path: Path) -> Any:
    import llama_cpp

    # An f32 KV cache (type 0): llama.cpp's default f16 cache alone costs ~5e-3 in logits,
    # which would hide a real conversion error of that size.
    return llama_cpp.Llama(
        model_path=str(path),
        n_ctx=256,
        logits_all=True,
        verbose=False,
        n_threads=2,
        seed=0,
        type_k=0,
        type_v=0,
    )


@functools.lru_cache(maxsize=4)
def _hf_model(src: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)


def _hf_logits(src: Path, ids: list[int]) -> np.ndarray[Any, Any]:
    import torch

    model = _hf_model(src)
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0].numpy()
    return np.asarray(out)


def _hf_ids(src: Path, text: str) -> list[int]:
    from transformers import AutoTokenizer

    return list(AutoTokenizer.from_pretrained(src)(text)["input_ids"])


def _gguf_logits(path: Path, ids: list[int]) -> np.ndarray[Any, Any]:
    llm = _llama(path)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


@pytest.mark.slow
@pytest.mark.parametrize("key", list(SPECS))
def test_llama_cpp_tokenizes_like_transformers(
    key: str, converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    llm = _llama(converted(key, "f32"))
    for text in PROBES:
        want = _hf_ids(checkpoints[key], text)
        got = llm.tokenize(text.encode(), add_bos=True, special=False)
        assert got == want, text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "wrong_pre"), [("llama", "qwen2"), ("llama", "gpt-2"), ("mistral", "llama-bpe")]
)
def test_a_wrong_pre_tokenizer_is_visible_in_the_probes(
    key: str,
    wrong_pre: str,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The parity test above can fail: forcing another pre changes some probe's ids."""
    import apr_qa.models.gguf_tokenizer as gguf_tokenizer

    monkeypatch.setattr(gguf_tokenizer, "_decide_pre", lambda src, backend: wrong_pre)
    llm = _llama(convert(checkpoints[key], tmp_path / "wrong-pre.gguf", "f32"))
    differ = [
        text
        for text in PROBES
        if llm.tokenize(text.encode(), add_bos=True, special=False)
        != _hf_ids(checkpoints[key], text)
    ]
    assert differ


@pytest.mark.slow
@pytest.mark.parametrize("key", list(SPECS))
def test_f32_logits_match_transformers(
    key: str, converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    ids = _hf_ids(checkpoints[key], "What is 2 + 2? The capital of France is Paris.")
    want = _hf_logits(checkpoints[key], ids)
    got = _gguf_logits(converted(key, "f32"), ids)
    # Measured: at most 6e-6 with logits up to ~5 in magnitude.
    assert np.abs(got - want).max() < 1e-4
    assert (got.argmax(-1) == want.argmax(-1)).all()


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_quantized_logits_stay_close(
    quant: str, converted: Callable[[str, str], Path], checkpoints: dict[str, Path]
) -> None:
    ids = _hf_ids(checkpoints["llama"], "What is 2 + 2? The capital of France is Paris.")
    want = _hf_logits(checkpoints["llama"], ids)
    got = _gguf_logits(converted("llama", quant), ids)
    agreement = float((got.argmax(-1) == want.argmax(-1)).mean())
    assert agreement >= 0.9


@pytest.mark.slow
def test_q4_k_m_through_llama_cpp_quantizer(tmp_path: Path) -> None:
    spec = Spec("Qwen2ForCausalLM", "qwen2", hidden=256, ffn=512, tied=True, vocab=512)
    src = build_checkpoint(tmp_path / "wide", spec)
    report = convert_with_report(src, tmp_path / "wide-q4_k_m.gguf", "q4_k_m")
    reader = gguf.GGUFReader(report.path)
    assert _field(reader, "general.file_type") == int(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    kinds = {t.tensor_type.name for t in reader.tensors}
    assert "Q4_K" in kinds
    assert report.fallbacks == ()
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    source = _source_tensors(src)["model.embed_tokens.weight"]
    values = gguf.quants.dequantize(embd.data, embd.tensor_type).reshape(source.shape)
    assert 0 < np.abs(values - source).max() / np.abs(source).max() < 0.15
    ids = _hf_ids(src, "What is 2 + 2?")
    got = _gguf_logits(report.path, ids)
    assert got.shape == (len(ids), spec.vocab) and np.isfinite(got).all()
    assert not list(tmp_path.glob(".wide-q4_k_m.gguf.*"))  # temp files cleaned up


@pytest.mark.slow
def test_k_quant_on_narrow_rows_reports_llama_cpp_fallbacks(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    report = convert_with_report(checkpoints["qwen2"], tmp_path / "narrow.gguf", "q4_k_m")
    # Rows of 64/96 values cannot hold 256-value K blocks: llama.cpp picks legacy quants.
    fell_back = {name for name, kind in report.tensor_types.items() if kind in ("Q5_0", "Q8_0")}
    assert "token_embd.weight" in fell_back
    assert len(report.fallbacks) == len(fell_back)
    assert all(name in " ".join(report.fallbacks) for name in fell_back)


# --- errors and the CLI ---------------------------------------------------------------


def test_supported_lists() -> None:
    assert {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"} <= set(
        SUPPORTED_ARCHITECTURES
    )
    assert {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k_m"} <= set(
        SUPPORTED_QUANTS
    )


def _copy_checkpoint(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_unsupported_architecture_is_usage_error_naming_it(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    src = _copy_checkpoint(checkpoints["llama"], tmp_path / "gpt")
    config = json.loads((src / "config.json").read_text())
    config["architectures"] = ["GPTNeoXForCausalLM"]
    (src / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "x.gguf")])
    assert result.exit_code == 2
    assert "GPTNeoXForCausalLM" in result.output and "LlamaForCausalLM" in result.output
    assert not (tmp_path / "x.gguf").exists()


def test_unsupported_quant_is_usage_error(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"iq2_xxs.*q4_0"):
        convert(checkpoints["llama"], tmp_path / "x.gguf", "iq2_xxs")
    result = CliRunner().invoke(
        cli, ["convert", str(checkpoints["llama"]), str(tmp_path / "x.gguf"), "--quant", "q3_0"]
    )
    assert result.exit_code == 2 and "q3_0" in result.output


def test_unknown_pre_tokenizer_is_an_error(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    src = _copy_checkpoint(checkpoints["llama"], tmp_path / "odd-pre")
    tok = json.loads((src / "tokenizer.json").read_text())
    tok["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\p{N}{1,2}|\p{L}+|\s+|."
    (src / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(UsageError, match="unknown pre-tokenizer"):
        convert(src, tmp_path / "x.gguf", "f32")
    assert not list(tmp_path.glob("*.gguf*"))


def test_bad_inputs_are_clear_errors(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="nowhere"):
        convert(tmp_path / "nowhere", tmp_path / "x.gguf", "f32")
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((checkpoints["llama"] / "config.json").read_text())
    with pytest.raises(UsageError, match=r"no \*\.safetensors"):
        convert(no_weights, tmp_path / "x.gguf", "f32")
    corrupt = _copy_checkpoint(checkpoints["llama"], tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(UsageError, match=r"model\.safetensors"):
        convert(corrupt, tmp_path / "x.gguf", "f32")
    sharded = _copy_checkpoint(checkpoints["llama"], tmp_path / "sharded")
    (sharded / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}})
    )
    with pytest.raises(UsageError, match="model-00002-of-00002"):
        convert(sharded, tmp_path / "x.gguf", "f32")


def test_sharded_bf16_checkpoint_converts(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    spec = Spec("LlamaForCausalLM", "llama-bpe", dtype="bfloat16")
    src = build_checkpoint(tmp_path / "bf16", spec)
    tensors = load_file(src / "model.safetensors")
    (src / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    weight_map = {}
    for shard, part in shards.items():
        save_file({n: tensors[n] for n in part}, src / shard)
        weight_map.update(dict.fromkeys(part, shard))
    (src / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    reader = gguf.GGUFReader(convert(src, tmp_path / "bf16.gguf", "bf16"))
    by_name = {t.name: t for t in reader.tensors}
    assert len(by_name) == len(tensors)
    embd = by_name["token_embd.weight"]
    assert embd.tensor_type == gguf.GGMLQuantizationType.BF16
    values = gguf.quants.dequantize(embd.data, embd.tensor_type).reshape(spec.vocab, spec.hidden)
    # bf16 -> bf16 is lossless.
    np.testing.assert_array_equal(
        values, tensors["model.embed_tokens.weight"].to(torch.float32).numpy()
    )


@pytest.mark.slow
def test_cli_convert_writes_a_file_that_loads(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / "out" / "model-f16.gguf"
    result = CliRunner().invoke(
        cli, ["convert", str(checkpoints["qwen2"]), str(dst), "--quant", "f16"]
    )
    assert result.exit_code == 0, result.output
    assert dst.is_file() and str(dst) in result.output
    plain = tmp_path / "plain-file"
    plain.write_bytes(b"")
    # Same permissions as any file written here, not the private 0600 of a temp file.
    assert dst.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert [p.name for p in dst.parent.iterdir()] == [dst.name]  # no temp files left
    llm = _llama(dst)
    assert llm.n_vocab() == SPECS["qwen2"].vocab


def _with_unigram_tokenizer(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose tokenizer.json is a (non byte-level) Unigram model."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    out = _copy_checkpoint(src, dst)
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=100, special_tokens=["<unk>"], unk_token="<unk>")
    tok.train_from_iterator(CORPUS * 5, trainer)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({"unk_token": "<unk>"}))
    return out


def test_non_bpe_tokenizer_without_sentencepiece_model_is_usage_error(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    src = _with_unigram_tokenizer(checkpoints["llama"], tmp_path / "unigram")
    with pytest.raises(UsageError, match="unsupported tokenizer"):
        convert(src, tmp_path / "x.gguf", "f32")


def test_sentencepiece_without_the_package_is_environment_error(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    src = _with_unigram_tokenizer(checkpoints["llama"], tmp_path / "spm")
    (src / "tokenizer.model").write_bytes(b"\x00" * 16)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "sentencepiece" else real_find_spec(name, *a),
    )
    with pytest.raises(EnvironmentProblem, match=r"tokenizer\.model.*sentencepiece"):
        convert(src, tmp_path / "x.gguf", "f32")


@pytest.mark.slow
def test_sentencepiece_checkpoint_converts_and_tokenizes_like_transformers(
    tmp_path: Path,
) -> None:
    # sentencepiece and protobuf (transformers reads tokenizer.model with it) are in
    # the test extra: a missing one fails here, it does not skip.
    import google.protobuf  # noqa: F401
    import sentencepiece as spm
    import torch
    import transformers

    out = tmp_path / "spm"
    out.mkdir()

    def train(normalizes: bool) -> None:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(CORPUS * 50),
            model_prefix=str(out / "tokenizer"),
            vocab_size=400,
            model_type="bpe",
            byte_fallback=True,
            split_digits=True,
            character_coverage=1.0,
            remove_extra_whitespaces=normalizes,
            normalization_rule_name="nmt_nfkc" if normalizes else "identity",
            minloglevel=2,
        )
        (out / "tokenizer.vocab").unlink()

    # Llama-2's own tokenizer.model does not normalize; llama.cpp implements no normalizer.
    train(normalizes=False)
    config = transformers.LlamaConfig(
        vocab_size=400,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(0.15 * torch.randn_like(param))
    model.save_pretrained(out)
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    hf_tok.save_pretrained(out)  # writes tokenizer.json next to tokenizer.model, as hubs ship

    path = convert(out, tmp_path / "spm.gguf", "f32")
    reader = gguf.GGUFReader(path)
    assert _field(reader, "tokenizer.ggml.model") == "llama"
    assert len(_field(reader, "tokenizer.ggml.scores")) == 400
    assert gguf.TokenType.BYTE in _field(reader, "tokenizer.ggml.token_type")
    llm = _llama(path)
    for text in [*PROBES, "héllo wörld ✓"]:
        assert llm.tokenize(text.encode(), add_bos=True) == list(hf_tok(text)["input_ids"]), text
    ids = list(hf_tok(PROBES[0])["input_ids"])
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    llm.eval(ids)
    assert np.abs(np.array(llm.scores[: len(ids)]) - want).max() < 1e-4

    train(normalizes=True)  # the trainer's defaults
    with pytest.raises(UsageError, match="normalizer rewrites text"):
        convert(out, tmp_path / "spm-collapsing.gguf", "f32")


# --- the committed fixture models -----------------------------------------------------


def _fixture_names() -> list[str]:
    """The fixtures whose GGUFs the reference converter writes (the others' are
    llama.cpp's: tests/models/test_llama_cpp_fixtures.py)."""
    from apr_qa.testing.fixtures.specs import FIXTURE_SPECS

    return sorted(n for n, s in FIXTURE_SPECS.items() if s.gguf_writer == "reference")


@pytest.mark.slow
@pytest.mark.parametrize("name", _fixture_names())
def test_fixture_model_converts_to_what_is_committed_and_matches_transformers(
    name: str, tmp_path: Path
) -> None:
    import filecmp

    from apr_qa.fixtures import FIXTURES_DIR, load_prompts

    src = FIXTURES_DIR / name
    assert (src / "config.json").is_file(), f"fixture {name} is not built"
    path = convert(src, tmp_path / f"{name}-f32.gguf", "f32")
    # The conversion is deterministic, and the committed GGUF is not stale.
    assert filecmp.cmp(path, src / f"{name}-f32.gguf", shallow=False)

    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(src)
    llm = _llama(path)
    prompts = load_prompts(name)
    runs = [p.prompt for p in prompts if p.prompt is not None]
    chats = [
        hf_tok.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in p.messages],
            add_generation_prompt=True,
            tokenize=False,
        )
        for p in prompts[:20]
        if p.messages is not None
    ]
    assert runs and chats
    for text in runs:
        assert llm.tokenize(text.encode(), add_bos=True) == list(hf_tok(text)["input_ids"]), text
    for text in chats:
        got = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert got == list(hf_tok(text, add_special_tokens=False)["input_ids"]), text
    for text in runs[:8]:
        ids = list(hf_tok(text)["input_ids"])
        want = _hf_logits(src, ids)
        llm.reset()
        llm.eval(ids)
        got_logits = np.array(llm.scores[: len(ids)])
        assert np.abs(got_logits - want).max() < 1e-4, text
        assert (got_logits.argmax(-1) == want.argmax(-1)).all(), text
