"""What ``apr-qa init`` learns about a model before writing its playbook.

From a local checkpoint directory, or a Hugging Face repo's small files (from the
cache when offline): the architecture (``model_type``), a family, the parameter
count and size category, whether a chat template is present, the tokenizer's
kind, whether it is a code model, and the GGUF files beside the checkpoint.

The parameter count is counted from the tensor table when the weights are at
hand (:func:`apr_qa.facts.count_facts`, no tensor data read); otherwise it is
computed from config.json through the architecture table
(:mod:`apr_qa.models.architectures`), and :attr:`Survey.counted` says which.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.facts import count_facts, size_category
from apr_qa.library.prompts import PromptForm
from apr_qa.models.architectures import Dims, architecture
from apr_qa.models.config import CONFIG_FILE, ModelConfig, read_config_json

__all__ = ["Survey", "estimate_parameters", "survey_directory", "survey_model"]

_FAMILIES = {"qwen2": "qwen", "qwen3": "qwen", "gemma2": "gemma", "phi3": "phi"}
# Names that say "code model" in the ids people give them (Qwen2.5-Coder, CodeLlama, StarCoder2).
# Whole-word starts only, so that "encoder" is not a code model.
_CODE_NAME = re.compile(r"(?<![a-z])code|(?<![a-z])coder|starcoder", re.IGNORECASE)
_GGUF_QUANT = re.compile(
    r"(?<![a-z0-9])(f32|f16|bf16|q8_0|q[4-5]_[01]|q[2-8]_k(?:_[sml])?|iq[1-4]_[a-z]+)(?![a-z0-9])",
    re.IGNORECASE,
)
_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
# Gemma's template: raise_exception('System role not supported').
_NO_SYSTEM = re.compile(r"raise_exception\(\s*['\"][^'\"]*system", re.IGNORECASE)


@dataclass(frozen=True)
class Survey:
    """What a model is, as far as writing its playbook needs.

    ``path`` is the local checkpoint directory (None for a repo id whose
    files came from the Hugging Face cache; ``snapshot`` is then where they lie).
    """

    model_id: str
    architecture: str
    family: str
    parameters: int
    counted: bool
    """True: counted from the tensor table; False: computed from config.json."""
    chat_template: bool
    tokenizer: str
    code: bool
    hf_repo: str | None = None
    path: Path | None = None
    snapshot: Path | None = None
    ggufs: Mapping[str, str] = field(default_factory=dict)
    """Quantization -> GGUF file name beside the checkpoint."""
    system_role: bool = True
    """Whether the chat template accepts a system message (Gemma's refuses one)."""

    @property
    def size_category(self) -> str:
        """``tiny`` … ``huge`` (:data:`apr_qa.facts.SIZE_CATEGORIES`)."""
        return size_category(self.parameters)

    @property
    def prompt_form(self) -> PromptForm:
        """``chat`` when the model has a chat template to frame conversations, else ``completion``."""
        return "chat" if self.chat_template else "completion"


def estimate_parameters(config: ModelConfig) -> int:
    """The parameter count a checkpoint of ``config`` holds, from its declared sizes.

    Every tensor of the architecture's table, per layer times the layer count;
    the output projection left out when tied. Zero when a size it needs is not declared.
    """
    arch = architecture(config.model_type)
    layers = config.size("num_hidden_layers") or 0
    dims = Dims(
        vocab=config.size("vocab_size"),
        hidden=config.size("hidden_size"),
        heads=config.size("num_attention_heads"),
        kv_heads=config.kv_heads,
        head_dim=config.head_dim,
        ffn=config.size("intermediate_size"),
    )
    tied = config.tie_word_embeddings
    if tied is None:
        tied = arch.tied_by_default
    total = 0
    for role in arch.tensors:
        if role.role == "output" and tied:
            continue
        count = 1
        for dim in role.shape:
            value = dims.value(dim)
            if value is None:
                return 0
            count *= value
        total += count * (layers if role.per_layer else 1)
    return total


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _tokenizer_kind(directory: Path) -> str:
    declared = _json(directory / "tokenizer_config.json").get("tokenizer_class")
    model = _json(directory / "tokenizer.json").get("model")
    algorithm = model.get("type") if isinstance(model, dict) else None
    if algorithm is None and any(directory.glob("*.model")):
        algorithm = "SentencePiece"
    parts = [str(p) for p in (declared, algorithm) if p]
    return " / ".join(parts) if parts else "none found"


def _chat_template(directory: Path) -> str | None:
    """The chat template's text (a list of named templates joined), or None."""
    declared = _json(directory / "tokenizer_config.json").get("chat_template")
    if isinstance(declared, list):
        declared = "\n".join(str(t.get("template", "")) for t in declared if isinstance(t, dict))
    if isinstance(declared, str) and declared.strip():
        return declared
    for name in _CHAT_TEMPLATE_FILES:
        if (directory / name).is_file():
            return (directory / name).read_text(encoding="utf-8", errors="replace")
    return None


def _ggufs(directory: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for gguf in sorted(directory.glob("*.gguf")):
        match = _GGUF_QUANT.search(gguf.name)
        if match is not None:
            found.setdefault(match[1].lower(), gguf.name)
    return found


def _family(model_type: str, name: str, code: bool) -> str:
    if "deepseek" in name.lower():
        return "deepseek-coder" if code else "deepseek"
    base = _FAMILIES.get(model_type, model_type)
    return f"{base}-coder" if code and not base.endswith("coder") else base


def survey_directory(
    directory: Path, model_id: str, *, hf_repo: str | None = None, local: bool = True
) -> Survey:
    """Survey a checkpoint directory (its config.json, tokenizer files, weights if present).

    Raises ``UsageError`` naming the directory when it holds no usable config.json.
    """
    if not (directory / CONFIG_FILE).is_file():
        raise UsageError(f"{directory}: not a model checkpoint (no {CONFIG_FILE})")
    raw = read_config_json(directory)
    config = ModelConfig.from_hf(raw)
    model_type = config.model_type or "unknown"
    counted = count_facts(model_id, directory, "safetensors")
    ggufs = _ggufs(directory)
    if counted is None and ggufs:
        counted = count_facts(model_id, directory / next(iter(ggufs.values())), "gguf")
    parameters = counted.parameters if counted is not None else estimate_parameters(config)
    if parameters <= 0:
        raise UsageError(
            f"{directory}: cannot tell the model's size: no weights, and {CONFIG_FILE} "
            "does not declare the sizes (layers, hidden, heads, vocab, intermediate)"
        )
    name = f"{model_id} {raw.get('_name_or_path', '')}"
    template = _chat_template(directory)
    code = bool(_CODE_NAME.search(name))
    return Survey(
        model_id=model_id,
        architecture=model_type,
        family=_family(model_type, name, code),
        parameters=parameters,
        counted=counted is not None,
        chat_template=template is not None,
        tokenizer=_tokenizer_kind(directory),
        code=code,
        hf_repo=hf_repo,
        path=directory if local else None,
        snapshot=None if local else directory,
        ggufs=ggufs,
        system_role=template is None or _NO_SYSTEM.search(template) is None,
    )


def survey_model(model: str) -> Survey:
    """Survey a local directory, or else a Hugging Face repo id (cache or network).

    A path that exists must be a checkpoint directory (``UsageError``); a repo id
    that is neither cached nor downloadable is an ``EnvironmentProblem``.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{path}: not a model checkpoint directory")
        return survey_directory(path.resolve(), path.resolve().name)
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        raise EnvironmentProblem(
            f"{model}: no such directory, and not a Hugging Face repo id (owner/name)"
        )
    from apr_qa.models.sources_hub import SMALL_PATTERNS, hub_snapshot

    snapshot = hub_snapshot(model, None, SMALL_PATTERNS)
    if not (snapshot / CONFIG_FILE).is_file():
        raise EnvironmentProblem(f"model {model}: no {CONFIG_FILE} in the repo")
    return survey_directory(snapshot, model, hf_repo=model, local=False)
