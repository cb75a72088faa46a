"""Hugging Face Hub access for ``sources``: a snapshot of only the files needed.

``huggingface_hub`` does the work (revision, cache layout, ``HF_TOKEN``,
fallback to the cache when the network is down). The cache location and offline
switch are read from the environment at call time rather than at import time
(``huggingface_hub.constants`` freezes them when first imported), so a process
that sets ``HF_HUB_CACHE`` or ``HF_HUB_OFFLINE`` late is still honoured. No error
message ever carries the token.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from apr_qa.errors import EnvironmentProblem, UsageError

__all__ = [
    "CHECKPOINT_PATTERNS",
    "SMALL_PATTERNS",
    "caseless_glob",
    "hub_snapshot",
    "remote_files",
]

# Everything a backend needs besides the weights: config, tokenizer, chat template.
SMALL_PATTERNS = [
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "chat_template*",
]
CHECKPOINT_PATTERNS = ["*.safetensors", "model.safetensors.index.json"]

_TRUE = {"1", "on", "yes", "true"}


def caseless_glob(pattern: str) -> str:
    """A glob that matches ``pattern`` in any letter case (the Hub matches case-sensitively)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in pattern)


def _offline() -> bool:
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _cache_dir() -> str | None:
    if os.environ.get("HF_HUB_CACHE"):
        return str(Path(os.environ["HF_HUB_CACHE"]).expanduser())
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    return None  # huggingface_hub's own default


def _redact(message: str) -> str:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    return message.replace(token, "***") if token else message


def remote_files(repo: str, revision: str | None) -> list[str] | None:
    """The repo's file names at ``revision``; None when offline or unreachable.

    Any failure here is left for ``hub_snapshot`` to report (it falls back to the
    cache, and its error names repo and revision).
    """
    if _offline():
        return None
    from huggingface_hub import HfApi

    try:
        return list(HfApi().list_repo_files(repo, revision=revision))
    # The same family of HTTP, network and validation errors as below; here each
    # one only means "decide from the cache instead".
    except Exception:
        return None


def hub_snapshot(repo: str, revision: str | None, patterns: Iterable[str]) -> Path:
    """Download (or find in the cache) the files of ``repo`` matching ``patterns``.

    Raises ``EnvironmentProblem`` naming repo and revision when the files are
    neither cached nor downloadable, ``UsageError`` for an invalid repo id.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    where = f"{repo}@{revision or 'main'}"
    offline = _offline()
    try:
        folder = snapshot_download(
            repo_id=repo,
            revision=revision,
            allow_patterns=list(patterns),
            cache_dir=_cache_dir(),
            local_files_only=offline,
        )
    except HFValidationError as e:
        raise UsageError(f"model {repo!r}: not a valid Hugging Face repo id ({e})") from e
    # huggingface_hub raises a family of HTTP, cache and OS errors here; all of
    # them mean the same thing to us: the model is not available.
    except Exception as e:
        mode = "offline (HF_HUB_OFFLINE)" if offline else "online"
        cache = _cache_dir() or "the default Hugging Face cache"
        raise EnvironmentProblem(
            f"model {where}: not available ({mode}, cache {cache}): "
            f"{type(e).__name__}: {_redact(str(e)).splitlines()[0] if str(e) else ''}"
        ) from e
    return Path(folder)
