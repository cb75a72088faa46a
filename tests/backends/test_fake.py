"""The fake backend: scripted answers, real-looking stops, and scripted crashes and hangs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from apr_qa.backends import LoadError, Vocab, create_backend
from apr_qa.backends.fake import EOS_ID, FakeBackend
from apr_qa.errors import EnvironmentProblem, UsageError


def _fake(tmp_path: Path, **script: Any) -> FakeBackend:
    path = tmp_path / "fake.json"
    path.write_text(json.dumps(script), encoding="utf-8")
    backend = FakeBackend()
    backend.load(path, "cpu")
    return backend


def test_scripted_answer_for_prompt_and_last_user_message(tmp_path: Path) -> None:
    b = _fake(tmp_path, answers={"What is 2 + 2?": "4", "Hi": "Hello"}, default="?")
    run = b.generate(prompt="What is 2 + 2?", max_tokens=8, temperature=0, seed=1)
    assert (run.text, run.token_ids, run.finish_reason) == ("4", (ord("4"), EOS_ID), "stop")
    chat = b.generate(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        max_tokens=8,
        temperature=0,
        seed=1,
    )
    assert chat.text == "Hello"
    assert b.generate(prompt="other", max_tokens=8, temperature=0, seed=1).text == "?"


def test_null_default_echoes_the_prompt(tmp_path: Path) -> None:
    b = _fake(tmp_path, default=None)
    assert b.generate(prompt="ping", max_tokens=10, temperature=0, seed=0).text == "ping"


def test_max_tokens_cuts_the_answer_and_reports_length(tmp_path: Path) -> None:
    b = _fake(tmp_path, default="abcdef")
    cut = b.generate(prompt="x", max_tokens=3, temperature=0, seed=0)
    assert (cut.text, len(cut.token_ids), cut.finish_reason) == ("abc", 3, "length")
    none = b.generate(prompt="x", max_tokens=0, temperature=0, seed=0)
    assert (none.text, none.token_ids, none.finish_reason) == ("", (), "length")


def test_min_tokens_holds_eos_back_until_then(tmp_path: Path) -> None:
    b = _fake(tmp_path, default="abc")
    plain = b.generate(prompt="x", max_tokens=8, temperature=0, seed=0, min_tokens=0)
    assert (plain.token_ids[-1], plain.finish_reason) == (EOS_ID, "stop")
    forced = b.generate(prompt="x", max_tokens=8, temperature=0, seed=0, min_tokens=8)
    assert len(forced.token_ids) == 8 and EOS_ID not in forced.token_ids
    assert (forced.text, forced.finish_reason) == ("abc abc ", "length")
    # At least min_tokens: the answer may end (with EOS) once past it, within max_tokens.
    some = b.generate(prompt="x", max_tokens=16, temperature=0, seed=0, min_tokens=5)
    assert EOS_ID not in some.token_ids[:5] and 5 <= len(some.token_ids) <= 16


def test_fail_load_raises_load_error_with_the_message(tmp_path: Path) -> None:
    path = tmp_path / "fake.json"
    path.write_text(json.dumps({"fail_load": "bad magic"}), encoding="utf-8")
    with pytest.raises(LoadError, match="bad magic"):
        create_backend("fake").load(path, "cpu")


def test_unreadable_script_is_a_load_error_and_unknown_keys_a_usage_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(LoadError, match=r"missing\.json"):
        FakeBackend().load(tmp_path / "missing.json", "cpu")
    bad = tmp_path / "bad.json"
    bad.write_text('{"answer": {}}', encoding="utf-8")
    with pytest.raises(UsageError, match="unknown fake-model keys: answer"):
        FakeBackend().load(bad, "cpu")


def test_vocab_and_deterministic_scores(tmp_path: Path) -> None:
    b = _fake(tmp_path, vocab={"pad_token": "<p>", "eos_token": "<e>", "special_tokens": ["<p>"]})
    assert b.vocab() == Vocab(pad_token="<p>", eos_token="<e>", special_tokens=("<p>",))
    ids = b.tokenize("héllo")
    assert bytes(ids).decode() == "héllo"
    logits = b.score(ids)
    assert logits.shape == (len(ids), 257) and logits.dtype == np.float32
    assert list(logits.argmax(axis=1)) == [(t + 1) % 257 for t in ids]
    np.testing.assert_array_equal(logits, b.score(ids))


_CHILD = """
import json, sys
from pathlib import Path
from apr_qa.backends.fake import FakeBackend
b = FakeBackend()
b.load(Path(sys.argv[1]), "cpu")
print(b.generate(prompt="safe", max_tokens=4, temperature=0, seed=0).text, flush=True)
b.generate(prompt=sys.argv[2], max_tokens=4, temperature=0, seed=0)
print("survived", flush=True)
"""


def _child(tmp_path: Path, prompt: str, timeout: float) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "fake.json"
    path.write_text(json.dumps({"crash_on": "BOOM", "hang_on": "SLEEP"}), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), prompt],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_crash_on_kills_the_process_with_sigsegv(tmp_path: Path) -> None:
    done = _child(tmp_path, "please BOOM now", timeout=60)
    assert done.returncode == -signal.SIGSEGV
    assert done.stdout == "safe\n"


def test_hang_on_never_returns(tmp_path: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired) as info:
        _child(tmp_path, "SLEEP here", timeout=10)
    out = info.value.stdout
    text = out.decode() if isinstance(out, bytes) else (out or "")
    assert "safe" in text and "survived" not in text


def test_gpu_is_not_offered(tmp_path: Path) -> None:
    path = tmp_path / "fake.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(EnvironmentProblem, match="no GPU"):
        FakeBackend().load(path, "gpu")
