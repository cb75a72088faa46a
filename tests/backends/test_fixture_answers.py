"""Every committed fixture answers its prompts.json in both runtimes, run and chat.

The expected answers were written by the fixture build from the training corpus, not
from these backends' output, so a backend that renders the chat template differently,
adds a token, or leaks the prompt into the text fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apr_qa.backends import Backend, create_backend
from apr_qa.fixtures import fixture_names, fixture_path, load_prompts

pytestmark = pytest.mark.slow

# The lossless GGUF and the 8-bit one; coarser quants are the engine's business.
_GGUF_QUANTS = ("f32", "q8_0")


def _artifacts() -> list[tuple[str, str, str]]:
    cells = []
    for name in fixture_names():
        cells.append((name, "transformers", ""))
        cells += [
            (name, "llama_cpp", f"{name}-{q}.gguf")
            for q in _GGUF_QUANTS
            if (fixture_path(name) / f"{name}-{q}.gguf").is_file()
        ]
    return cells


@pytest.fixture(scope="module", params=_artifacts(), ids=lambda c: "/".join(filter(None, c)))
def loaded(request: pytest.FixtureRequest) -> Iterator[tuple[str, Backend]]:
    name, kind, file = request.param
    path: Path = fixture_path(name) / file if file else fixture_path(name)
    backend = create_backend(kind)
    backend.load(path, "cpu")
    yield name, backend
    backend.close()


def test_fixture_answers_every_prompt(loaded: tuple[str, Backend]) -> None:
    name, backend = loaded
    wrong = []
    prompts = load_prompts(name)
    for p in prompts:
        g = (
            backend.generate(prompt=p.prompt, max_tokens=48, temperature=0, seed=0)
            if p.modality == "run"
            else backend.generate(messages=p.chat_messages(), max_tokens=48, temperature=0, seed=0)
        )
        if g.text.strip() != p.expected or g.finish_reason != "stop":
            wrong.append(f"{p.id}: {g.text!r} ({g.finish_reason}), expected {p.expected!r}")
    assert len(prompts) > 0
    assert wrong == [], f"{len(wrong)} of {len(prompts)} wrong: " + "; ".join(wrong[:5])
