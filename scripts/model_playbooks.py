"""Write playbooks/models/: one playbook per model of the certification table.

The models' config.json sizes are written here (they cannot be downloaded on a
machine without the network); the parameter count is computed from them
through the architecture table, the same way ``apr-qa init`` computes it for a
repo whose weights are not cached, and each playbook is composed from the
``full`` template by the same code as ``apr-qa init``, so a change to the
templates or the prompts reaches these files by running this script:

    python scripts/model_playbooks.py          # rewrite playbooks/models/
    python scripts/model_playbooks.py --check  # exit 1 when a file is out of date

GGUF sources: the publishers' GGUF files live in separate repos, which
``model.files`` (files of the one repo) cannot name; they are listed under
``metadata.gguf_sources`` for whoever fetches them, and apr-qa converts the
quantizations it needs from the checkpoint meanwhile.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from apr_qa.library.compose import Composed, compose, render
from apr_qa.library.survey import Survey, estimate_parameters
from apr_qa.models.config import ModelConfig

OUT = Path(__file__).resolve().parents[1] / "playbooks" / "models"
QUANTS = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m")


@dataclass(frozen=True)
class Entry:
    """One row of the certification table and what its playbook needs."""

    slug: str
    repo: str
    family: str
    config: dict[str, Any]
    code: bool
    gguf_repo: str
    gguf_names: str
    """The GGUF repo's file-name scheme, ``{q}`` for the quantization as it spells it."""
    upper: bool = False
    system_role: bool = True
    tokenizer: str = "PreTrainedTokenizerFast / BPE"


def _cfg(model_type: str, hidden: int, layers: int, heads: int, kv: int, ffn: int, vocab: int,
         *, tied: bool, head_dim: int | None = None) -> dict[str, Any]:  # fmt: skip
    cfg: dict[str, Any] = {
        "model_type": model_type,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": ffn,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
    }
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    return cfg


def _qwen_coder(size: str, *cfg: int, tied: bool) -> Entry:
    return Entry(
        f"qwen2.5-coder-{size.lower()}-instruct",
        f"Qwen/Qwen2.5-Coder-{size}-Instruct",
        "qwen-coder",
        _cfg("qwen2", *cfg, tied=tied),
        True,
        f"Qwen/Qwen2.5-Coder-{size}-Instruct-GGUF",
        f"qwen2.5-coder-{size.lower()}-instruct-{{q}}.gguf",
        tokenizer="Qwen2Tokenizer / BPE",
    )


ENTRIES = (
    Entry(
        "deepseek-coder-1.3b-instruct",
        "deepseek-ai/deepseek-coder-1.3b-instruct",
        "deepseek-coder",
        _cfg("llama", 2048, 24, 16, 16, 5504, 32256, tied=False),
        True,
        "TheBloke/deepseek-coder-1.3b-instruct-GGUF",
        "deepseek-coder-1.3b-instruct.{q}.gguf",
        upper=True,
        tokenizer="LlamaTokenizerFast / BPE",
    ),
    Entry(
        "gemma-2-2b-it",
        "google/gemma-2-2b-it",
        "gemma",
        _cfg("gemma2", 2304, 26, 8, 4, 9216, 256000, tied=True, head_dim=256),
        False,
        "bartowski/gemma-2-2b-it-GGUF",
        "gemma-2-2b-it-{q}.gguf",
        upper=True,
        system_role=False,
        tokenizer="GemmaTokenizer / BPE",
    ),
    Entry(
        "llama-3.2-1b-instruct",
        "meta-llama/Llama-3.2-1B-Instruct",
        "llama",
        _cfg("llama", 2048, 16, 32, 8, 8192, 128256, tied=True, head_dim=64),
        False,
        "bartowski/Llama-3.2-1B-Instruct-GGUF",
        "Llama-3.2-1B-Instruct-{q}.gguf",
        upper=True,
    ),
    Entry(
        "llama-3.2-3b-instruct",
        "meta-llama/Llama-3.2-3B-Instruct",
        "llama",
        _cfg("llama", 3072, 28, 24, 8, 8192, 128256, tied=True, head_dim=128),
        False,
        "bartowski/Llama-3.2-3B-Instruct-GGUF",
        "Llama-3.2-3B-Instruct-{q}.gguf",
        upper=True,
    ),
    Entry(
        "mistral-7b-instruct-v0.3",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "mistral",
        _cfg("mistral", 4096, 32, 32, 8, 14336, 32768, tied=False),
        False,
        "bartowski/Mistral-7B-Instruct-v0.3-GGUF",
        "Mistral-7B-Instruct-v0.3-{q}.gguf",
        upper=True,
        tokenizer="LlamaTokenizerFast / SentencePiece",
    ),
    Entry(
        "phi-3-mini-4k-instruct",
        "microsoft/Phi-3-mini-4k-instruct",
        "phi",
        _cfg("phi3", 3072, 32, 32, 32, 8192, 32064, tied=False),
        False,
        "bartowski/Phi-3-mini-4k-instruct-GGUF",
        "Phi-3-mini-4k-instruct-{q}.gguf",
        upper=True,
        tokenizer="LlamaTokenizer / SentencePiece",
    ),
    _qwen_coder("0.5B", 896, 24, 14, 2, 4864, 151936, tied=True),
    _qwen_coder("1.5B", 1536, 28, 12, 2, 8960, 151936, tied=True),
    _qwen_coder("3B", 2048, 36, 16, 2, 11008, 151936, tied=True),
    _qwen_coder("7B", 3584, 28, 28, 4, 18944, 152064, tied=False),
    _qwen_coder("14B", 5120, 48, 40, 8, 13824, 152064, tied=False),
    _qwen_coder("32B", 5120, 64, 40, 8, 27648, 152064, tied=False),
)


def _gguf_sources(entry: Entry) -> dict[str, str]:
    def spelled(q: str) -> str:
        if q == "f16":
            return "f16" if entry.upper else "fp16"
        return q.upper() if entry.upper else q

    return {q: f"{entry.gguf_repo}/{entry.gguf_names.format(q=spelled(q))}" for q in QUANTS}


def composed(entry: Entry) -> Composed:
    """The playbook of one table row: the full template, the row's facts and GGUF sources."""
    config = ModelConfig.from_hf(entry.config)
    survey = Survey(
        model_id=entry.repo,
        architecture=entry.config["model_type"],
        family=entry.family,
        parameters=estimate_parameters(config),
        counted=False,
        chat_template=True,
        tokenizer=entry.tokenizer,
        code=entry.code,
        hf_repo=entry.repo,
        system_role=entry.system_role,
    )
    out = compose(survey, OUT / f"{entry.slug}.playbook.yaml", "full")
    data = dict(out.data)
    data.pop("golden")
    data["name"] = entry.slug
    data["metadata"] = {"gguf_sources": _gguf_sources(entry)}
    note = (
        "Golden outputs: record them with `apr-qa golden` once the checkpoint is at hand,",
        "and name the file under `golden:`. GGUF files: metadata.gguf_sources says where the",
        "publishers' are; until sources fetch from a second repo, apr-qa converts the checkpoint.",
    )
    header = tuple(
        line.replace(
            "Written by `apr-qa init`", "Written by scripts/model_playbooks.py (apr-qa init's code)"
        )
        for line in out.header
    )
    return replace(out, data=data, header=(*header, *note))


def main(argv: list[str]) -> int:
    """Write (or, with --check, compare) every model playbook."""
    check = "--check" in argv
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for entry in ENTRIES:
        path = OUT / f"{entry.slug}.playbook.yaml"
        text = render(composed(entry))
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"out of date: {path} (run python scripts/model_playbooks.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
