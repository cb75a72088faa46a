"""Streaming readers: round trips through both formats, and bad input as one-line errors."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import quantize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from apr_qa.errors import UsageError
from apr_qa.models.readers import open_model
from apr_qa.models.readers_gguf import GGUFModelReader, file_type_name
from apr_qa.models.readers_safetensors import SafetensorsModelReader

RNG = np.random.default_rng(7)


def _weights() -> dict[str, np.ndarray]:
    return {
        "model.embed_tokens.weight": RNG.standard_normal((16, 32)).astype(np.float32),
        "model.norm.weight": RNG.standard_normal(32).astype(np.float32),
        "lm_head.weight": RNG.standard_normal((16, 32)).astype(np.float16),
        "model.ids": np.arange(6, dtype=np.int64).reshape(2, 3),
    }


def _write_gguf(path: Path, tensors: dict[str, np.ndarray], *, file_type: int | None = 0) -> None:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(2)
    writer.add_embedding_length(256)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_feed_forward_length(512)
    writer.add_token_list(["<s>", "a", "b"])
    if file_type is not None:
        writer.add_file_type(file_type)
    for name, array in tensors.items():
        qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}
        kind = name.split(".")[-1]
        if kind in qtype:
            writer.add_tensor(name, quantize(array, qtype[kind]), raw_dtype=qtype[kind])
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _one_line_naming(err: pytest.ExceptionInfo[UsageError], path: Path) -> None:
    message = str(err.value)
    assert str(path) in message
    assert "\n" not in message


# --- safetensors -----------------------------------------------------------------


def test_safetensors_file_round_trips_every_tensor_as_float32(tmp_path: Path) -> None:
    weights = _weights()
    save_file(weights, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 32}))
    reader = open_model(tmp_path)
    assert reader.format == "safetensors"
    assert reader.config == {"hidden_size": 32}
    infos = {i.name: i for i in reader.tensor_infos()}
    assert infos["lm_head.weight"].dtype == "f16"
    assert infos["lm_head.weight"].nbytes == 16 * 32 * 2
    # f32 holds 16*32*4 + 32*4 bytes against f16's 16*32*2.
    assert reader.quantization == "f32"
    seen = {}
    for info, array in reader.iter_tensors():
        assert array.dtype == np.float32
        seen[info.name] = array
    assert seen.keys() == weights.keys()
    for name, expected in weights.items():
        np.testing.assert_array_equal(seen[name], expected.astype(np.float32))


def test_bfloat16_is_widened_exactly(tmp_path: Path) -> None:
    # Values exactly representable in bfloat16, written as their top 16 bits.
    values = np.array([[1.0, -2.5, 3.0], [0.15625, -0.0, 65536.0]], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}})
    path = tmp_path / "bf.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bits)
    reader = open_model(path)
    assert reader.tensor_infos()[0].dtype == "bf16"
    np.testing.assert_array_equal(reader.read_tensor("w"), values)


def test_sharded_checkpoint_reads_through_the_index(tmp_path: Path) -> None:
    weights = _weights()
    names = list(weights)
    save_file(
        {n: weights[n] for n in names[:2]}, str(tmp_path / "model-00001-of-00002.safetensors")
    )
    save_file(
        {n: weights[n] for n in names[2:]}, str(tmp_path / "model-00002-of-00002.safetensors")
    )
    weight_map = {n: f"model-0000{1 + (i >= 2)}-of-00002.safetensors" for i, n in enumerate(names)}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    reader = open_model(tmp_path)
    assert sorted(i.name for i in reader.tensor_infos()) == sorted(names)
    np.testing.assert_array_equal(
        reader.read_tensor(names[3]), weights[names[3]].astype(np.float32)
    )


def test_stored_bytes_and_shard_are_each_tensors_own(tmp_path: Path) -> None:
    # The mutants rewrite checkpoints from these bytes and the converter names the shard
    # in its errors: a reader that handed back another tensor's range, or a converted
    # copy (f16 widened to f32, int64 to float), fails here.
    weights = _weights()
    names = list(weights)
    shard_of = {n: f"model-0000{1 + (i >= 2)}-of-00002.safetensors" for i, n in enumerate(names)}
    for shard in sorted(set(shard_of.values())):
        save_file({n: weights[n] for n in names if shard_of[n] == shard}, str(tmp_path / shard))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shard_of}))
    reader = SafetensorsModelReader(tmp_path)
    for name, array in weights.items():
        assert reader.read_stored(name) == array.astype(array.dtype.newbyteorder("<")).tobytes()
        assert reader.tensor_file(name) == tmp_path / shard_of[name]
    with pytest.raises(UsageError, match="no tensor named 'nope'"):
        reader.read_stored("nope")


def test_stored_bytes_of_a_file_cut_after_opening_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(_weights(), str(path))
    reader = SafetensorsModelReader(path)
    whole = {i.name: reader.read_stored(i.name) for i in reader.tensor_infos()}
    assert all(whole.values())
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(UsageError, match="truncated") as err:
        for name in whole:
            reader.read_stored(name)
    _one_line_naming(err, path)


def test_iter_tensors_is_lazy_one_tensor_at_a_time(tmp_path: Path) -> None:
    save_file(_weights(), str(tmp_path / "model.safetensors"))
    reader = open_model(tmp_path)
    stream = reader.iter_tensors()
    first_info, _ = next(stream)
    # Damage a later tensor's bytes after the stream started: a reader that had
    # loaded everything up front would not see it.
    later = reader.tensor_infos()[-1]
    assert later.name != first_info.name
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-later.nbytes :] = b"\x00" * later.nbytes
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    arrays = {info.name: array for info, array in stream}
    assert not arrays[later.name].any()


def test_missing_shard_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    save_file({"a": np.zeros(2, np.float32)}, str(tmp_path / "s1.safetensors"))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}))
    with pytest.raises(UsageError, match=r"s2\.safetensors is missing") as err:
        open_model(tmp_path)
    _one_line_naming(err, index)


def test_nonexistent_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file") as err:
        open_model(tmp_path / "nope")
    _one_line_naming(err, tmp_path / "nope")


def test_directory_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="no weights") as err:
        open_model(tmp_path)
    _one_line_naming(err, tmp_path)


def _valid_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file({"a": np.ones((4, 4), np.float32)}, str(path))
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"\xff" * 8 + b[8:], "exceeds the file"),
        (lambda b: b[:8] + b"{not json" + b[17:], "not valid JSON"),
        (lambda b: b[:-32], "past the end of the file"),
        (lambda b: b[:5], "too short"),
    ],
    ids=["garbage-length", "invalid-json", "offsets-past-eof", "no-header"],
)
def test_corrupt_safetensors_header(tmp_path: Path, damage: object, message: str) -> None:
    path = _valid_file(tmp_path)
    assert callable(damage)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UsageError, match=message) as err:
        open_model(path)
    _one_line_naming(err, path)


def test_header_whose_offsets_disagree_with_shape(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 12]}})
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0" * 24)
    with pytest.raises(UsageError, match="needs 24") as err:
        open_model(path)
    _one_line_naming(err, path)


# --- GGUF ------------------------------------------------------------------------


def test_gguf_round_trip_in_hf_orientation_with_dequantization(tmp_path: Path) -> None:
    a = RNG.standard_normal((8, 256)).astype(np.float32)
    tensors = {"w.f32": a, "w.f16": a.astype(np.float16), "w.q8_0": a, "w.q4_0": a}
    path = tmp_path / "m.gguf"
    _write_gguf(path, tensors, file_type=gguf.LlamaFileType.MOSTLY_Q8_0)
    reader = open_model(path)
    assert isinstance(reader, GGUFModelReader)
    infos = {i.name: i for i in reader.tensor_infos()}
    assert {n: i.shape for n, i in infos.items()} == dict.fromkeys(tensors, (8, 256))
    assert infos["w.q8_0"].dtype == "q8_0"
    assert infos["w.q8_0"].nbytes == 8 * 256 // 32 * 34
    got = {info.name: array for info, array in reader.iter_tensors()}
    np.testing.assert_array_equal(got["w.f32"], a)
    np.testing.assert_array_equal(got["w.f16"], a.astype(np.float16).astype(np.float32))
    # Quantization error bounds: q8_0 ~ scale/2 per block, q4_0 coarser.
    assert np.abs(got["w.q8_0"] - a).max() < 0.05
    assert np.abs(got["w.q4_0"] - a).max() < 0.6
    assert np.abs(got["w.q4_0"] - a).max() > np.abs(got["w.q8_0"] - a).max()
    assert reader.quantization == "q8_0"


def test_gguf_config_uses_hf_names(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    _write_gguf(path, {"x": np.zeros((2, 2), np.float32)})
    reader = open_model(path)
    assert reader.config == {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 512,
        "vocab_size": 3,
    }
    assert reader.metadata["tokenizer.ggml.tokens"] == ["<s>", "a", "b"]
    assert not any(k.startswith("GGUF.") for k in reader.metadata)


def test_gguf_quantization_without_file_type_is_the_dominant_tensor_type(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    big = RNG.standard_normal((4, 256)).astype(np.float32)
    _write_gguf(path, {"w.q4_0": big, "n": np.ones(4, np.float32)}, file_type=None)
    assert GGUFModelReader(path).quantization == "q4_0"


@pytest.mark.parametrize(("code", "name"), [(0, "f32"), (1, "f16"), (15, "q4_k_m"), (32, "bf16")])
def test_file_type_names(code: int, name: str) -> None:
    assert file_type_name(code) == name


def test_gguf_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    _write_gguf(path, {"x": np.zeros((2, 2), np.float32)})
    path.write_bytes(b"GGUX" + path.read_bytes()[4:])
    with pytest.raises(UsageError, match="bad magic") as err:
        open_model(path)
    _one_line_naming(err, path)


def test_gguf_truncated_tensor_data(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    _write_gguf(path, {"x": np.ones((64, 64), np.float32)})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UsageError, match="truncated") as err:
        open_model(path)
    _one_line_naming(err, path)


def test_gguf_with_absurd_array_length_fails_fast_instead_of_looping(tmp_path: Path) -> None:
    # A header claiming a 2**62-element string array: gguf-py alone would loop on it.
    key = b"tokenizer.ggml.tokens"
    body = (
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<IIQ", 9, 8, 2**62)
        + b"\0" * 64
    )
    path = tmp_path / "evil.gguf"
    path.write_bytes(body)
    with pytest.raises(UsageError, match="truncated or corrupt") as err:
        open_model(path)
    _one_line_naming(err, path)


def test_unknown_tensor_name(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    _write_gguf(path, {"x": np.zeros((2, 2), np.float32)})
    with pytest.raises(UsageError, match="no tensor named 'y'"):
        open_model(path).read_tensor("y")


def test_unknown_file_kind(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(UsageError, match="not a model file") as err:
        open_model(path)
    _one_line_naming(err, path)


# --- fuzz: damaged files are a UsageError or read fine, never anything else ------

_SEED_FILES: dict[str, bytes] = {}


def _seed_bytes(kind: str, tmp: Path) -> bytes:
    if kind not in _SEED_FILES:
        path = tmp / f"seed.{kind}"
        if kind == "gguf":
            _write_gguf(path, {"w.q8_0": np.ones((2, 64), np.float32), "n": np.ones(3, np.float32)})
        else:
            save_file({"a": np.ones((2, 3), np.float32), "b": np.ones(4, np.float16)}, str(path))
        _SEED_FILES[kind] = path.read_bytes()
    return _SEED_FILES[kind]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["gguf", "safetensors"]),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
    cut=st.none() | st.floats(0, 1),
)
def test_damaged_files_never_escape_as_other_errors(
    tmp_path: Path, kind: str, edits: list[tuple[float, int]], cut: float | None
) -> None:
    data = bytearray(_seed_bytes(kind, tmp_path))
    for where, value in edits:
        data[min(int(where * len(data)), len(data) - 1)] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / f"damaged.{kind}"
    path.write_bytes(bytes(data))
    try:
        with open_model(path) as reader:
            for info, array in reader.iter_tensors():
                assert array.shape == info.shape
    except UsageError as e:
        assert str(path) in str(e)
        assert "\n" not in str(e)


def test_gguf_dimensions_whose_product_wraps_in_int64_are_rejected(tmp_path: Path) -> None:
    # 2**32 x 2**32 elements is 0 modulo 2**64: an int64 product would say "empty".
    name = b"w"
    header = (
        b"GGUF"
        + struct.pack("<IQQ", 3, 1, 0)
        + struct.pack("<Q", len(name))
        + name
        + struct.pack("<IQQIQ", 2, 2**32, 2**32, 0, 0)
    )
    path = tmp_path / "wrap.gguf"
    path.write_bytes(header + b"\0" * (-len(header) % 32) + b"\0" * 64)
    with pytest.raises(UsageError, match="truncated") as err:
        open_model(path)
    _one_line_naming(err, path)


def test_safetensors_shape_whose_product_wraps_in_int64_is_rejected(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}})
    path = tmp_path / "wrap.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode())
    with pytest.raises(UsageError, match="needs") as err:
        open_model(path)
    _one_line_naming(err, path)
