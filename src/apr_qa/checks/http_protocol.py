"""F-HTTP: what someone operating an OpenAI-compatible server expects of it.

Runs in every serve cell, with its server ready, before the scenarios: health,
well-formed chat and text completions, SSE streaming that ends with
``data: [DONE]``, no leaked template tokens or tokenizer artefacts, usage
counts, 4xx for bad requests, a bounded answer to a huge ``max_tokens``,
parallel requests, determinism at temperature 0. Rules: docs/gates.md, "Serve".
A gate whose prerequisite failed (no JSON to look into) is skipped with that
reason, so a defect is charged to the one gate that names it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apr_qa.checks import Stage, register
from apr_qa.checks.finding import Finding
from apr_qa.serve.http import Endpoint, Reply, get, post, post_raw, stream

if TYPE_CHECKING:
    from apr_qa.execute.cell import CellRunner

__all__ = ["HUGE_MAX_TOKENS", "LEAKS", "Probe", "ServeProtocol", "protocol_findings", "shown"]

HUGE_MAX_TOKENS = 1_000_000
MAX_TOKENS = 16
LEAKS = re.compile(
    r"<\|[A-Za-z_]+\|>|</?s>|\[/?INST\]|<(?:start|end)_of_turn>|\btoken\d+\b|[\u0120\u010a\u2581]"
)
"""Template tokens (``<|im_end|>``, ``</s>``, ``[INST]``, ``<end_of_turn>``),
placeholder tokens (``token123``) and byte-level BPE / SentencePiece artefacts
(``Ġ``, ``Ċ``, ``▁``) that a detokenizer should never let through."""


@dataclass(frozen=True)
class Probe:
    """What the protocol checks ask: one chat turn and one raw prompt."""

    messages: tuple[Mapping[str, str], ...]
    prompt: str
    concurrency: int = 10
    timeout_s: float = 60.0


def _json(reply: Reply) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None


def _status(reply: Reply) -> str:
    return reply.error or f"HTTP {reply.status}"


def _content(data: Any, chat: bool) -> str | None:
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
    except (KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None


def _health(endpoint: Endpoint, probe: Probe) -> Finding:
    reply = get(endpoint, "/v1/models", probe.timeout_s)
    data = _json(reply) if reply.status == 200 else None
    models = data.get("data") if isinstance(data, dict) else None
    if isinstance(models, list) and models:
        return Finding("F-HTTP-001", True, f"/v1/models lists {len(models)} model(s)")
    return Finding("F-HTTP-001", False, f"/v1/models: {_status(reply)}, no model list")


def _chat(endpoint: Endpoint, probe: Probe, body: Mapping[str, Any]) -> Reply:
    return post(endpoint, "/v1/chat/completions", body, probe.timeout_s)


def _body(endpoint: Endpoint, probe: Probe, **extra: Any) -> dict[str, Any]:
    return {
        "model": endpoint.model,
        "messages": [dict(m) for m in probe.messages],
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "seed": 0,
        **extra,
    }


def _stream(endpoint: Endpoint, probe: Probe) -> Finding:
    got = stream(endpoint, "/v1/chat/completions", _body(endpoint, probe), probe.timeout_s)
    gate = "F-HTTP-003"
    if got.status != 200:
        return Finding(gate, False, f"stream: {_status(Reply(got.status, error=got.error))}")
    if not got.data or got.data[-1] != "[DONE]":
        last = got.data[-1][:80] if got.data else "nothing"
        return Finding(gate, False, f"the stream did not end with data: [DONE] (last: {last})")
    bad = [d for d in got.data[:-1] if not isinstance(_json(Reply(200, d.encode())), dict)]
    if bad or got.other:
        shown = (bad or list(got.other))[0][:80]
        return Finding(gate, False, f"a stream line is not a JSON data: event: {shown!r}")
    return Finding(
        gate,
        True,
        f"{len(got.data) - 1} data: chunk(s) then data: [DONE]",
        metrics={"ttft_s": got.ttft_s or got.seconds, "duration_s": got.seconds},
    )


def _answers(endpoint: Endpoint, probe: Probe) -> list[Finding]:
    """F-HTTP-002, -004, -005, -006 and -011 from two chat and one text completion."""
    first = _chat(endpoint, probe, _body(endpoint, probe))
    data = _json(first) if first.status == 200 else None
    content = _content(data, chat=True)
    out: list[Finding] = []
    if first.status != 200:
        out.append(Finding("F-HTTP-002", False, f"chat completion: {_status(first)}"))
    elif data is None:
        shown = first.body[:80].decode("utf-8", "replace")
        out.append(Finding("F-HTTP-002", False, f"chat completion is not JSON: {shown!r}"))
    elif not content or not content.strip():
        out.append(Finding("F-HTTP-002", False, "choices[0].message.content is missing or empty"))
    else:
        out.append(Finding("F-HTTP-002", True, f"200, JSON, content {content[:40]!r}"))
    text = post(
        endpoint,
        "/v1/completions",
        {"model": endpoint.model, "prompt": probe.prompt, "max_tokens": MAX_TOKENS, "seed": 0},
        probe.timeout_s,
    )
    completion = _content(_json(text), chat=False) if text.status == 200 else None
    if completion is None:
        out.append(Finding("F-HTTP-004", False, f"text completion: {_status(text)}, no text"))
    else:
        out.append(Finding("F-HTTP-004", True, f"200, JSON, text {completion[:40]!r}"))
    seen = [t for t in (content, completion) if t]
    if not seen:
        out.append(Finding("F-HTTP-005", None, "no completion text to look into"))
    else:
        leaks = sorted({m.group(0) for t in seen for m in LEAKS.finditer(t)})
        out.append(
            Finding("F-HTTP-005", False, f"leaked into the answer: {', '.join(leaks[:5])}")
            if leaks
            else Finding("F-HTTP-005", True, f"no template token or artefact in {len(seen)}")
        )
    out.append(_usage(data))
    if content is None:
        out.append(Finding("F-HTTP-011", None, "no chat completion to repeat"))
    else:
        again = _content(_json(_chat(endpoint, probe, _body(endpoint, probe))), chat=True)
        same = again == content
        out.append(
            Finding(
                "F-HTTP-011",
                same,
                "temperature 0 twice gave the same text"
                if same
                else f"temperature 0 twice: {content[:40]!r} then {str(again)[:40]!r}",
            )
        )
    return out


def _usage(data: Any) -> Finding:
    gate = "F-HTTP-006"
    if not isinstance(data, dict):
        return Finding(gate, None, "no chat completion JSON to read usage from")
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return Finding(gate, False, "the completion has no usage")
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    values = [usage.get(k) for k in keys]
    if not all(isinstance(v, int) and v > 0 for v in values[::2]) or not isinstance(values[1], int):
        return Finding(gate, False, f"usage counts missing or not positive: {usage}")
    assert isinstance(values[0], int) and isinstance(values[1], int)
    if values[2] != values[0] + values[1]:
        return Finding(gate, False, f"usage total is not prompt + completion: {usage}")
    return Finding(gate, True, f"usage {values[0]} + {values[1]} = {values[2]} tokens")


def _client_errors(endpoint: Endpoint, probe: Probe) -> list[Finding]:
    """Requests no model can answer. What an operator needs is that the server says
    so and stays up: a 4xx (or, for empty ``messages``, a well-formed completion:
    OpenAI's own API refuses them, llama.cpp's server answers them) for the first;
    an error status for the second (llama.cpp's server answers a body that is not
    JSON with a 500: wrong class, harmless, said in the reason). A 5xx to empty
    messages, a 200 to a body that is not JSON, or no answer at all fails."""
    empty = _chat(endpoint, probe, _body(endpoint, probe, messages=[]))
    broken = post_raw(endpoint, "/v1/chat/completions", b'{"messages": [', probe.timeout_s)
    what = "empty messages"
    if 400 <= empty.status < 500:
        first = Finding("F-HTTP-007", True, f"{what}: {_status(empty)}")
    elif empty.status == 200 and _content(_json(empty), chat=True) is not None:
        first = Finding("F-HTTP-007", True, f"{what}: HTTP 200 with a well-formed completion")
    else:
        first = Finding("F-HTTP-007", False, f"{what}: {_status(empty)}, not 4xx")
    what = "malformed JSON"
    up = get(endpoint, "/v1/models", probe.timeout_s).status == 200
    if broken.status >= 500 and up:
        second = Finding(
            "F-HTTP-008",
            True,
            f"{what}: {_status(broken)} (a server error for a client's), still up",
        )
    elif 400 <= broken.status < 500:
        second = Finding("F-HTTP-008", True, f"{what}: {_status(broken)}")
    else:
        why = "the server stopped answering" if not up else "not an error status"
        second = Finding("F-HTTP-008", False, f"{what}: {_status(broken)}, {why}")
    return [first, second]


def _concurrent(endpoint: Endpoint, probe: Probe) -> Finding:
    n = probe.concurrency
    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda _: _chat(endpoint, probe, _body(endpoint, probe)), range(n)))
    failed = [r for r in replies if r.status != 200]
    slowest = max(r.seconds for r in replies)
    metrics = {"concurrency": float(n), "slowest_s": slowest}
    if failed:
        why = sorted({_status(r) for r in failed})
        reason = f"{len(failed)} of {n} parallel requests failed: {'; '.join(why[:3])}"
        return Finding("F-HTTP-010", False, reason, metrics=metrics)
    reason = f"{n} parallel requests all answered 200 within {probe.timeout_s:.0f} s"
    return Finding("F-HTTP-010", True, reason, metrics=metrics)


def _huge(endpoint: Endpoint, probe: Probe) -> Finding:
    reply = _chat(endpoint, probe, _body(endpoint, probe, max_tokens=HUGE_MAX_TOKENS))
    after = get(endpoint, "/v1/models", probe.timeout_s)
    gate = "F-HTTP-009"
    if after.status != 200:
        return Finding(gate, False, f"after max_tokens {HUGE_MAX_TOKENS}: server {_status(after)}")
    if reply.status == 200 or 400 <= reply.status < 500:
        return Finding(gate, True, f"max_tokens {HUGE_MAX_TOKENS}: {_status(reply)}, still up")
    return Finding(gate, False, f"max_tokens {HUGE_MAX_TOKENS}: {_status(reply)}")


def protocol_findings(endpoint: Endpoint, probe: Probe) -> list[Finding]:
    """Every F-HTTP protocol verdict on the server at ``endpoint`` (SIGTERM aside).

    The huge ``max_tokens`` request goes last: a server it kills fails that gate
    alone, not every one after it.
    """
    health = _health(endpoint, probe)
    if health.passed is False and get(endpoint, "/v1/models", probe.timeout_s).status == 0:
        return [health]  # nothing listens: the other gates have nothing to ask
    return [
        health,
        *_answers(endpoint, probe),
        _stream(endpoint, probe),
        *_client_errors(endpoint, probe),
        _concurrent(endpoint, probe),
        _huge(endpoint, probe),
    ]


def _probe_texts(session: CellRunner) -> tuple[tuple[Mapping[str, str], ...], str]:
    from apr_qa.checks.probe import probes

    _, candidates = probes(session)
    for instance in candidates:
        if instance.messages:
            prompt = instance.text or "Hello"
            return tuple(dict(m) for m in instance.messages), prompt
    text = candidates[0].text if candidates else "Hello"
    return ({"role": "user", "content": text},), text


@register(Stage.CELL)
class ServeProtocol:
    """The F-HTTP protocol gates, in serve cells."""

    name = "http-protocol"

    def run(self, session: CellRunner) -> None:
        """Ask the cell's server the protocol questions; record one verdict per gate."""
        from apr_qa.execute.server_client import ServerClient

        worker = session.worker
        if not isinstance(worker, ServerClient) or worker.endpoint is None:
            return
        messages, prompt = _probe_texts(session)
        probe = Probe(messages, prompt, worker.spec.concurrency, session.timeout_s)
        for finding in protocol_findings(worker.endpoint, probe):
            session.record(finding.gate, finding.outcome, finding.reason, metrics=finding.metrics)
        if worker.server is not None and not worker.server.alive():
            # A server the protocol questions killed crashed (G3); the scenarios get a new one.
            session.crashed.append(
                f"protocol checks: server exit status {worker.server.returncode()}"
            )
            worker.kill()
            session.worker = None


def shown(findings: Sequence[Finding]) -> str:
    """One line per finding (test failure messages)."""
    return "\n".join(f"{f.gate} {f.outcome}: {f.reason}" for f in findings)
