"""The worker protocol's wire form: typed replies survive the pipe, anything else is refused."""

from __future__ import annotations

import pytest

from apr_qa.execute.messages import Failed, ProtocolError, decode_reply, encode


@pytest.mark.parametrize("kind", ["error", "context"])
def test_a_failure_keeps_its_kind_across_the_pipe(kind: str) -> None:
    sent = Failed("the prompt of 900 tokens does not fit the context of 256", kind)  # type: ignore[arg-type]
    assert decode_reply(encode(sent)) == sent


def test_a_failure_without_a_kind_is_an_error() -> None:
    assert decode_reply('{"op": "failed", "error": "boom"}') == Failed("boom", "error")


def test_a_failure_of_an_unknown_kind_is_not_a_message() -> None:
    with pytest.raises(ProtocolError, match="unknown failure kind"):
        decode_reply('{"op": "failed", "error": "boom", "kind": "maybe"}')
