"""The llama.cpp backend: one GGUF file through llama-cpp-python, on CPU or GPU.

Generation drives ``Llama.generate`` token by token, so the ids reported are the
ids the model produced (never a re-tokenization of its text), and stops on any
end-of-generation token, as llama.cpp's own completion API does; with
``min_tokens`` every end-of-generation token's logit is set to -inf until that
many tokens came out (llama-cpp-python's own ``MinTokensLogitsProcessor`` only
suppresses EOS, and a chat turn ends on its end-of-turn token). Chat renders the
GGUF's own ``tokenizer.chat_template``, the way llama-cpp-python's chat API does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from apr_qa.backends import (
    ContextOverflow,
    Generation,
    LoadError,
    Unsupported,
    Vocab,
    check_device,
    check_request,
    timed_generation,
)
from apr_qa.backends._common import checked_ids, one_line
from apr_qa.backends.threads import llama_threads
from apr_qa.errors import AprQaError, EnvironmentProblem, UsageError

__all__ = ["DEFAULT_CONTEXT", "LlamaCppBackend"]

DEFAULT_CONTEXT = 2048
"""Context window used unless the model was trained on a shorter one."""


class LlamaCppBackend:
    """``llama_cpp.Llama`` over a GGUF file."""

    kind = "llama_cpp"

    def __init__(self) -> None:
        self._path: Path | None = None
        self._llm: Any = None
        self._special: tuple[str, ...] | None = None
        self._eog: list[int] | None = None

    def load(self, path: Path, device: str, *, trust_remote_code: bool = False) -> None:
        """Load the GGUF file ``path``; ``trust_remote_code`` has no meaning for GGUF."""
        check_device(device)
        if device == "gpu":
            from apr_qa.backends.device import gpu_unavailable_reason

            reason = gpu_unavailable_reason(self.kind)
            if reason is not None:
                raise EnvironmentProblem(f"{path}: cannot load on gpu: {reason}")
        if not path.is_file():
            raise LoadError(f"{path}: no such file")
        llm = _open(path, -1 if device == "gpu" else 0, _context_size(path))
        self._llm = llm
        self._path = path
        self._special = None
        self._eog = None

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
        llm = self._loaded()
        import llama_cpp

        started = time.perf_counter()
        if messages is not None:
            # The rendered template carries its own BOS where it wants one.
            ids = llm.tokenize(self._chat_prompt(messages).encode(), add_bos=False, special=True)
        else:
            ids = llm.tokenize((prompt or "").encode(), add_bos=True, special=True)
        if not ids:
            # An empty prompt starts from BOS, as llama-cpp-python's completion API does.
            bos = int(llm.token_bos())
            if bos < 0:
                raise UsageError(f"{self._path}: empty prompt and the model has no BOS token")
            ids = [bos]
        context = int(llm.n_ctx())
        room = context - len(ids)
        if room <= 0 and max_tokens > 0:
            raise ContextOverflow(self._path, len(ids), context)
        budget = min(max_tokens, room)
        new: list[int] = []
        first_token_at: float | None = None
        reason = "length"
        if budget > 0:
            vocab = llm._model.vocab
            floor = min(min_tokens, budget)
            processors = None
            if floor > 0:
                eog = self._eog_ids()

                def hold_eog(_ids: Any, scores: npt.NDArray[np.float32]) -> Any:
                    # The first sampler in the chain sees the whole vocabulary in id order.
                    if len(new) < floor:
                        scores[eog] = -np.inf
                    return scores

                processors = llama_cpp.LogitsProcessorList([hold_eog])
            # Each call starts from an empty cache, as a transformers call does: a prefix
            # reused from the previous call would hide (or cause) nondeterminism.
            llm.reset()
            # 0xFFFFFFFF is llama.cpp's "pick a random seed"; keep every seed below it.
            llm.set_seed(seed % 0xFFFFFFFF)
            # top_k 0, top_p 1 and min_p 0 switch those samplers off: plain temperature.
            for token in llm.generate(
                ids,
                temp=temperature,
                top_k=0,
                top_p=1.0,
                min_p=0.0,
                repeat_penalty=1.0,
                logits_processor=processors,
            ):
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                new.append(int(token))
                if len(new) > floor and llama_cpp.llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                if len(new) >= budget:
                    break
        text = llm.detokenize(new, special=False).decode("utf-8", errors="replace")
        return timed_generation(
            text=text,
            token_ids=new,
            prompt_tokens=len(ids),
            started=started,
            first_token_at=first_token_at,
            finished=time.perf_counter(),
            finish_reason=reason,
        )

    def _eog_ids(self) -> list[int]:
        """Every end-of-generation id of the vocabulary (EOS, end of turn, ...)."""
        if self._eog is None:
            import llama_cpp

            llm = self._loaded()
            vocab = llm._model.vocab
            n_vocab = int(llm.n_vocab())
            self._eog = [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)]
        return self._eog

    def tokenize(self, text: str) -> list[int]:
        """Ids of ``text`` as a raw prompt; see ``Backend.tokenize``."""
        llm = self._loaded()
        return [int(t) for t in llm.tokenize(text.encode(), add_bos=True, special=True)]

    def hidden_states(self, token_ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Not available: llama-cpp-python exposes no per-layer outputs."""
        self._loaded()
        raise Unsupported(f"{self._path}: llama.cpp exposes no per-layer hidden states")

    def score(self, token_ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """Teacher-forced logits for ``token_ids``, float32 ``[n, vocab]``.

        Decodes on the loaded context with logits requested at every position, rather
        than opening the model a second time with ``logits_all``.
        """
        llm = self._loaded()
        n_vocab = int(llm.n_vocab())
        ids = checked_ids(token_ids, n_vocab, int(llm.n_ctx()), self._path)
        out = np.zeros((len(ids), n_vocab), dtype=np.float32)
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        step = int(llm.n_batch)
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            llm._batch.set_batch(batch=chunk, n_past=start, logits_all=True)
            llm._ctx.decode(llm._batch)
            rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(chunk) * n_vocab,))
            out[start : start + len(chunk)] = rows.reshape(len(chunk), n_vocab)
        # The cache now holds these ids; the next generate must not take them as a prefix.
        llm.reset()
        return out

    def vocab(self) -> Vocab:
        """Pad, EOS and control tokens of the GGUF vocabulary."""
        llm = self._loaded()
        import llama_cpp

        model = llm._model
        if self._special is None:
            control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
            self._special = tuple(
                model.token_get_text(i)
                for i in range(int(llm.n_vocab()))
                if model.token_get_attr(i) & control
            )
        pad = llama_cpp.llama_vocab_pad(model.vocab)
        eos = int(llm.token_eos())
        return Vocab(
            pad_token=model.token_get_text(pad) if pad >= 0 else None,
            eos_token=model.token_get_text(eos) if eos >= 0 else None,
            special_tokens=self._special,
        )

    def close(self) -> None:
        """Free the model and its context."""
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    def _loaded(self) -> Any:
        if self._llm is None:
            raise UsageError("the llama_cpp backend is not loaded")
        return self._llm

    def _chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self._llm
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise UsageError(f"{self._path}: the GGUF has no tokenizer.chat_template")
        model = llm._model
        eos, bos = int(llm.token_eos()), int(llm.token_bos())
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
        )
        try:
            plain: Any = [dict(m) for m in messages]
            rendered: str = formatter(messages=plain).prompt
        except Exception as exc:
            # A template that raises on these messages is the model's fault, not ours.
            raise UsageError(f"{self._path}: the chat template failed: {one_line(exc)}") from exc
        return rendered


def _open(path: Path, gpu_layers: int, n_ctx: int) -> Any:
    from llama_cpp import Llama

    try:
        # Beside other workers, only this worker's share of the cores (backends.threads).
        threads = llama_threads()
        return Llama(
            model_path=str(path),
            n_gpu_layers=gpu_layers,
            n_ctx=n_ctx,
            logits_all=False,
            verbose=False,
            n_threads=threads,
            n_threads_batch=threads,
        )
    except Exception as exc:
        # llama-cpp-python raises ValueError("Failed to load model from file") and, for
        # some damage, RuntimeError or others; all mean the artifact does not load.
        raise LoadError(f"{path}: {one_line(exc)}") from exc


def _context_size(path: Path) -> int:
    """``DEFAULT_CONTEXT``, or the model's trained context when shorter (past it, the
    positions are extrapolated and llama.cpp warns)."""
    from apr_qa.models.readers_gguf import GGUFModelReader

    try:
        trained = GGUFModelReader(path).config.get("max_position_embeddings")
    except AprQaError:
        # Whether the file loads is for llama.cpp to say (gate G1), not our reader.
        return DEFAULT_CONTEXT
    if isinstance(trained, int) and 0 < trained < DEFAULT_CONTEXT:
        return trained
    return DEFAULT_CONTEXT
