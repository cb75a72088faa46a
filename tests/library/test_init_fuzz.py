"""`apr-qa init` on hostile checkpoints: a documented exit code, never a traceback."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apr_qa.cli import cli

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_VALID = {
    "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 300,
}  # fmt: skip
# A sound config with some keys replaced by hostile values (or dropped): some write a
# playbook, most are refused; none may crash.
_CONFIG = st.builds(
    lambda changes, dropped: {
        **{k: v for k, v in _VALID.items() if k not in dropped},
        **changes,
    },
    st.dictionaries(
        st.sampled_from([*_VALID, "tie_word_embeddings", "head_dim", "architectures"]),
        st.integers(-3, 5000) | st.sampled_from(["qwen2", "gemma2", "phi3", "mystery"]) | _JSON,
        max_size=3,
    ),
    st.sets(st.sampled_from(list(_VALID)), max_size=2),
)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    config=_CONFIG | _JSON,
    tokenizer_config=_JSON,
    raw=st.one_of(st.none(), st.binary(max_size=64)),
)
def test_init_never_tracebacks(config: object, tokenizer_config: object, raw: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "m"
        model.mkdir()
        text = json.dumps(config).encode() if raw is None else raw
        (model / "config.json").write_bytes(text)
        (model / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
        out = Path(tmp) / "p.yaml"
        result = CliRunner().invoke(cli, ["init", str(model), "-o", str(out), "--no-golden"])
        assert result.exit_code in (0, 2, 3), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        if result.exit_code == 0:
            assert out.is_file()
        else:
            assert len(result.stderr.splitlines()) == 1, result.stderr


def test_init_on_special_files() -> None:
    runner = CliRunner()
    for target in (os.devnull, "/"):
        result = runner.invoke(cli, ["init", target, "-o", "/nonexistent-dir-apr-qa/p.yaml"])
        assert result.exit_code == 2, result.output
