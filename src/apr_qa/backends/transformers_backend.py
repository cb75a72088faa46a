"""The transformers backend: a safetensors checkpoint directory, on CPU or CUDA.

The model runs in the dtype it was stored in, so what is qualified is the checkpoint
as published, not an upcast of it. Generation stops where the model's generation
config says (its ``eos_token_id`` list), as ``transformers`` users see it;
``min_tokens`` is transformers' ``min_new_tokens``, which suppresses that whole
list until then.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from apr_qa.backends import (
    ContextOverflow,
    Generation,
    LoadError,
    Vocab,
    check_device,
    check_request,
    timed_generation,
)
from apr_qa.backends._common import checked_ids, one_line
from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.models.config import CONFIG_FILE, read_config_json

if TYPE_CHECKING:
    import torch

__all__ = ["TransformersBackend"]

_DTYPES = ("float32", "float16", "bfloat16")


class _FirstTokenClock:
    """A generate() streamer that only notes when the first new token arrives.

    ``generate`` calls ``put`` once with the prompt, then once per new token.
    """

    def __init__(self) -> None:
        self.first_token_at: float | None = None
        self._seen_prompt = False

    def put(self, value: Any) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
        elif self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def end(self) -> None:
        pass


class TransformersBackend:
    """``AutoModelForCausalLM`` + ``AutoTokenizer`` from a local directory."""

    kind = "transformers"

    def __init__(self) -> None:
        self._path: Path | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = "cpu"

    def load(self, path: Path, device: str, *, trust_remote_code: bool = False) -> None:
        """Load the checkpoint directory ``path`` onto ``device``."""
        check_device(device)
        if device == "gpu":
            from apr_qa.backends.device import gpu_unavailable_reason

            reason = gpu_unavailable_reason(self.kind)
            if reason is not None:
                raise EnvironmentProblem(f"{path}: cannot load on gpu: {reason}")
        if not path.is_dir():
            raise LoadError(f"{path}: not a checkpoint directory")
        import torch
        import transformers

        # transformers' partial annotations fight more than they help at this boundary.
        hf: Any = transformers

        dtype = getattr(torch, _stored_dtype(path))
        hf.utils.logging.set_verbosity_error()
        hf.utils.logging.disable_progress_bar()
        try:
            tokenizer = hf.AutoTokenizer.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=trust_remote_code
            )
            model, info = hf.AutoModelForCausalLM.from_pretrained(
                str(path),
                local_files_only=True,
                trust_remote_code=trust_remote_code,
                dtype=dtype,
                output_loading_info=True,
            )
        except Exception as exc:
            # Any failure here is the artifact failing to load; the message is the evidence.
            raise LoadError(f"{path}: {one_line(exc)}") from exc
        # transformers fills missing or mismatched weights with random values and only
        # warns; a model run on random weights must not count as loaded.
        for key in ("missing_keys", "mismatched_keys", "unexpected_keys"):
            names = sorted(str(n) for n in info.get(key) or ())
            if names:
                shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
                raise LoadError(f"{path}: {len(names)} {key.replace('_', ' ')}: {shown}")
        self._device = "cuda" if device == "gpu" else "cpu"
        self._model = model.to(self._device).eval()
        self._tokenizer = tokenizer
        self._path = path

    def generate(
        self,
        *,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, str]] | None = None,
        max_tokens: int,
        temperature: float,
        seed: int,
        min_tokens: int = 0,
    ) -> Generation:
        """Complete ``prompt`` or answer ``messages``; see ``Backend.generate``."""
        check_request(prompt, messages, max_tokens, temperature, min_tokens)
        model, tokenizer = self._loaded()
        import torch

        started = time.perf_counter()
        if messages is not None:
            text = self._chat_prompt(messages)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = tokenizer(prompt)["input_ids"]
        if not ids:
            # An empty prompt starts from BOS, as generate() without input ids does.
            bos = tokenizer.bos_token_id
            if bos is None:
                bos = _first(model.generation_config.bos_token_id)
            if bos is None:
                raise UsageError(f"{self._path}: empty prompt and the model has no BOS token")
            ids = [int(bos)]
        room = self._context() - len(ids)
        if room <= 0 and max_tokens > 0:
            raise ContextOverflow(self._path, len(ids), self._context())
        budget = min(max_tokens, room)
        if budget == 0:
            return timed_generation(
                text="",
                token_ids=(),
                prompt_tokens=len(ids),
                started=started,
                first_token_at=None,
                finished=time.perf_counter(),
                finish_reason="length",
            )
        import transformers

        hf: Any = transformers
        base = model.generation_config
        eos = base.eos_token_id
        config = hf.GenerationConfig(
            max_new_tokens=budget,
            min_new_tokens=min(min_tokens, budget),
            do_sample=temperature > 0,
            eos_token_id=eos,
            pad_token_id=base.pad_token_id if base.pad_token_id is not None else _first(eos),
            bos_token_id=base.bos_token_id,
        )
        if temperature > 0:
            # Plain temperature sampling, the same distribution llama.cpp is asked for.
            config.temperature = temperature
            config.top_k = 0
            config.top_p = 1.0
            torch.manual_seed(seed)
        clock = _FirstTokenClock()
        input_ids = torch.tensor([ids], dtype=torch.long, device=self._device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=config,
                streamer=clock,
            )
        new = [int(t) for t in out[0, len(ids) :].tolist()]
        finished = time.perf_counter()
        stops = _as_set(eos)
        reason = "stop" if new and new[-1] in stops else "length"
        return timed_generation(
            text=tokenizer.decode(new, skip_special_tokens=True),
            token_ids=new,
            prompt_tokens=len(ids),
            started=started,
            first_token_at=clock.first_token_at,
            finished=finished,
            finish_reason=reason,
        )

    def tokenize(self, text: str) -> list[int]:
        """Ids of ``text`` as a raw prompt; see ``Backend.tokenize``."""
        _, tokenizer = self._loaded()
        return [int(t) for t in tokenizer(text)["input_ids"]]

    def score(self, token_ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Teacher-forced logits for ``token_ids``, float32 ``[n, vocab]``."""
        model, _ = self._loaded()
        import torch

        vocab_size = int(model.get_output_embeddings().weight.shape[0])
        ids = checked_ids(token_ids, vocab_size, self._context(), self._path)
        if not ids:
            return np.zeros((0, vocab_size), dtype=np.float32)
        with torch.inference_mode():
            logits: torch.Tensor = model(
                input_ids=torch.tensor([ids], dtype=torch.long, device=self._device)
            ).logits
        return np.ascontiguousarray(logits[0].float().cpu().numpy(), dtype=np.float32)

    def hidden_states(self, token_ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Every layer's output (embeddings first), float32 ``[layers + 1, n, hidden]``."""
        model, _ = self._loaded()
        import torch

        vocab_size = int(model.get_output_embeddings().weight.shape[0])
        ids = checked_ids(token_ids, vocab_size, self._context(), self._path)
        hidden = int(model.config.hidden_size)
        layers = int(model.config.num_hidden_layers)
        if not ids:
            return np.zeros((layers + 1, 0, hidden), dtype=np.float32)
        with torch.inference_mode():
            out = model(
                input_ids=torch.tensor([ids], dtype=torch.long, device=self._device),
                output_hidden_states=True,
            )
        stacked = torch.stack([h[0] for h in out.hidden_states]).float().cpu().numpy()
        return np.ascontiguousarray(stacked, dtype=np.float32)

    def load_weights(self, path: Path) -> None:
        """Replace the loaded model's weights with those of ``path``, another artifact
        of the same model (a GGUF, or a checkpoint of the same config), read one
        tensor at a time (:func:`apr_qa.models.hf_weights.hf_tensors`).

        The model class, config and tokenizer stay the checkpoint's, so hidden states
        are then the other artifact's weights run by transformers. LoadError when
        its tensors do not fill the model (missing, unknown, or of another shape);
        the model is then left half-written and must not be used again.
        """
        model, _ = self._loaded()
        import torch

        from apr_qa.models.hf_weights import OUTPUT_NAME, hf_tensors

        config = model.config.to_dict()
        targets = model.state_dict(keep_vars=True)
        filled: set[str] = set()
        unknown: list[str] = []
        try:
            with torch.no_grad():
                for name, values in hf_tensors(path, config):
                    target = targets.get(name)
                    if target is None:
                        unknown.append(name)
                        continue
                    if tuple(target.shape) != values.shape:
                        raise LoadError(
                            f"{path}: {name} has shape {values.shape}, "
                            f"the model {tuple(target.shape)}"
                        )
                    target.copy_(torch.from_numpy(values).to(target.dtype))
                    filled.add(name)
        except UsageError as exc:
            raise LoadError(one_line(exc)) from exc
        # Hidden states never reach the output projection: it need not be filled.
        missing = sorted(set(targets) - filled - {OUTPUT_NAME})
        for what, names in (("missing", missing), ("unknown", unknown)):
            if names:
                shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
                raise LoadError(f"{path}: {len(names)} {what} tensors: {shown}")

    def vocab(self) -> Vocab:
        """Pad, EOS and special tokens of the tokenizer."""
        _, tokenizer = self._loaded()
        special: list[str] = list(tokenizer.all_special_tokens)
        for added in tokenizer.added_tokens_decoder.values():
            if added.special and added.content not in special:
                special.append(added.content)
        return Vocab(
            pad_token=tokenizer.pad_token,
            eos_token=tokenizer.eos_token,
            special_tokens=tuple(special),
        )

    def close(self) -> None:
        """Drop the model (and its CUDA memory)."""
        self._model = None
        self._tokenizer = None
        if self._device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _loaded(self) -> tuple[Any, Any]:
        if self._model is None:
            raise UsageError("the transformers backend is not loaded")
        return self._model, self._tokenizer

    def _context(self) -> int:
        limit = getattr(self._model.config, "max_position_embeddings", None)
        return int(limit) if isinstance(limit, int) and limit > 0 else 2048

    def _chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        if not self._tokenizer.chat_template:
            raise UsageError(f"{self._path}: the model has no chat template")
        text: str = self._tokenizer.apply_chat_template(
            [dict(m) for m in messages], add_generation_prompt=True, tokenize=False
        )
        return text


def _stored_dtype(path: Path) -> str:
    """The checkpoint's dtype from config.json (``dtype``, older ``torch_dtype``)."""
    try:
        config = read_config_json(path)
    except UsageError as exc:
        raise LoadError(one_line(exc)) from exc
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    if name not in _DTYPES:
        raise LoadError(f"{path / CONFIG_FILE}: unsupported dtype {name!r}")
    return str(name)


def _as_set(ids: int | list[int] | None) -> set[int]:
    if ids is None:
        return set()
    return {ids} if isinstance(ids, int) else set(ids)


def _first(ids: int | list[int] | None) -> int | None:
    if isinstance(ids, list):
        return ids[0] if ids else None
    return ids
