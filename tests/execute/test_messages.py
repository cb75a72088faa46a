"""Worker messages: every type survives the wire, anything else is a ProtocolError, and a
real worker answers each request type (fake backend; the real runtimes in the slow tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apr_qa.backends import Generation, Vocab
from apr_qa.execute import messages as m
from apr_qa.execute.client import WorkerClient, WorkerDied

FIXTURES = Path(__file__).parents[2] / "src" / "apr_qa" / "fixtures" / "models"

SAMPLES: list[m.Message] = [
    m.Load("transformers", "/x", "cpu", trust_remote_code=True),
    m.Generate("hi \ud800", None, 4, 0.0, 7),
    m.Generate(None, ({"role": "user", "content": "hé"},), 4, 0.5, 1),
    m.Generate("hi", None, 8, 0.0, 0, min_tokens=8),
    m.Tokenize("text"),
    m.Score((1, 2, 3)),
    m.HiddenStates((4, 5)),
    m.LoadWeights("/x/model-q8_0.gguf"),
    m.Ping(),
    m.Exit(),
    m.Loaded(0.25, Vocab("<pad>", "</s>", ("<pad>", "</s>"))),
    m.Generated(Generation("ok", (1, 2), 3, 0.1, 0.2, 5.0, "stop")),
    m.Tokens((9, 8)),
    m.Logits(np.arange(6, dtype=np.float32).reshape(2, 3)),
    m.Hidden(np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)),
    m.Failed("ValueError: nope"),
    m.Pong(),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda x: type(x).__name__)
def test_every_message_round_trips(message: m.Message) -> None:
    line = m.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert m.decode(line) == message


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=40))
def test_arrays_are_bit_exact_on_the_wire(values: list[float]) -> None:
    array = np.array(values, dtype=np.float32).reshape(len(values), 1)
    back = m.decode(m.encode(m.Logits(array)))
    assert isinstance(back, m.Logits) and back.values.tobytes() == array.tobytes()


def test_a_generate_line_without_min_tokens_asks_for_none() -> None:
    line = b'{"op": "generate", "prompt": "hi", "messages": null, "max_tokens": 4,'
    line += b' "temperature": 0.0, "seed": 0}'
    assert m.decode(line) == m.Generate("hi", None, 4, 0.0, 0, min_tokens=0)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json",
        b"[]",
        b'{"op": "nope"}',
        b'{"op": "load"}',
        b'{"op": "tokens", "ids": "x"}',
    ],
)
def test_anything_else_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(m.ProtocolError):
        m.decode(line)


def test_requests_and_replies_are_not_confused() -> None:
    with pytest.raises(m.ProtocolError, match="sent a reply"):
        m.decode_request(m.encode(m.Pong()))
    with pytest.raises(m.ProtocolError, match="answered with a request"):
        m.decode_reply(m.encode(m.Ping()))


def test_a_real_worker_answers_every_request_type(tmp_path: Path) -> None:
    model = tmp_path / "fake.json"
    model.write_text(json.dumps({"answers": {"hi": "hello"}}))
    client = WorkerClient()
    try:
        before = client.request(m.Tokenize("x"), 60).reply
        assert isinstance(before, m.Failed) and "no model is loaded" in before.error
        loaded = client.request(m.Load("fake", str(model), "cpu"), 60).reply
        assert isinstance(loaded, m.Loaded) and loaded.vocab.pad_token == "<pad>"
        gen = client.request(m.Generate("hi", None, 16, 0.0, 0), 60).reply
        assert isinstance(gen, m.Generated) and gen.generation.text == "hello"
        # min_tokens reaches the backend: past its answer, the fake goes on to 8 tokens.
        forced = client.request(m.Generate("hi", None, 8, 0.0, 0, min_tokens=8), 60).reply
        assert isinstance(forced, m.Generated) and len(forced.generation.token_ids) == 8
        assert forced.generation.finish_reason == "length"
        tokens = client.request(m.Tokenize("AB"), 60).reply
        assert tokens == m.Tokens((65, 66))
        logits = client.request(m.Score((65, 66)), 60).reply
        assert isinstance(logits, m.Logits) and logits.values.shape == (2, 257)
        hidden = client.request(m.HiddenStates((65, 66)), 60).reply
        assert isinstance(hidden, m.Hidden) and hidden.values.shape == (2, 2, 4)
        # Only transformers runs another artifact's weights in its model.
        swapped = client.request(m.LoadWeights(str(model)), 60).reply
        assert isinstance(swapped, m.Failed) and "Unsupported" in swapped.error
        assert client.request(m.Ping(), 60).reply == m.Pong()
    finally:
        client.close()


def test_a_worker_that_writes_off_protocol_is_treated_as_dead(tmp_path: Path) -> None:
    # A library printing to the reply pipe would desynchronise the parent: the worker
    # is killed and the cell sees a crash with its stderr, not a misread reply.
    model = tmp_path / "fake.json"
    model.write_text(json.dumps({"answers": {}}))
    client = WorkerClient()
    try:
        client._buffer = b"garbage from a library\n"  # as if it had been written to stdout
        with pytest.raises(WorkerDied, match="not a worker message"):
            client.request(m.Ping(), 60)
        assert not client.alive()
    finally:
        client.close()


@pytest.mark.slow
def test_hidden_states_from_transformers_and_none_from_llama_cpp() -> None:
    client = WorkerClient()
    try:
        path = FIXTURES / "tiny-llama"
        assert isinstance(
            client.request(m.Load("transformers", str(path), "cpu"), 300).reply, m.Loaded
        )
        config = json.loads((path / "config.json").read_text())
        hidden = client.request(m.HiddenStates((1, 5, 9)), 120).reply
        assert isinstance(hidden, m.Hidden)
        layers, hidden_size = config["num_hidden_layers"], config["hidden_size"]
        assert hidden.values.shape == (layers + 1, 3, hidden_size)
        assert np.isfinite(hidden.values).all() and hidden.values.std() > 0
    finally:
        client.close()
    client = WorkerClient()
    try:
        gguf = FIXTURES / "tiny-llama" / "tiny-llama-f32.gguf"
        assert isinstance(
            client.request(m.Load("llama_cpp", str(gguf), "cpu"), 300).reply, m.Loaded
        )
        refused = client.request(m.HiddenStates((1, 5)), 120).reply
        assert isinstance(refused, m.Failed) and "Unsupported" in refused.error
    finally:
        client.close()


# -- failure kinds --


@pytest.mark.parametrize("kind", ["error", "context"])
def test_a_failure_keeps_its_kind_across_the_pipe(kind: str) -> None:
    sent = m.Failed("the prompt of 900 tokens does not fit the context of 256", kind)  # type: ignore[arg-type]
    assert m.decode_reply(m.encode(sent)) == sent


def test_a_failure_without_a_kind_is_an_error() -> None:
    assert m.decode_reply('{"op": "failed", "error": "boom"}') == m.Failed("boom", "error")


def test_a_failure_of_an_unknown_kind_is_not_a_message() -> None:
    with pytest.raises(m.ProtocolError, match="unknown failure kind"):
        m.decode_reply('{"op": "failed", "error": "boom", "kind": "maybe"}')
