"""Generation engines behind one interface: hf, openai, vllm (and auto)."""

from __future__ import annotations

import importlib.util
import logging

from distill.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    Sample,
    SamplingParams,
    derive_seed,
)
from distill.options import BackendOptions

log = logging.getLogger(__name__)

__all__ = ["Backend", "GenerationRequest", "GenerationResult", "Sample", "SamplingParams", "derive_seed",
           "make_backend", "resolve_backend"]


def resolve_backend(name: str) -> str:
    """'auto' -> 'vllm' when vLLM is importable and a CUDA GPU is present, else 'hf'; the choice is logged."""
    if name != "auto":
        return name
    import torch

    has_vllm = importlib.util.find_spec("vllm") is not None
    has_cuda = torch.cuda.is_available()
    chosen = "vllm" if has_vllm and has_cuda else "hf"
    why = "vLLM and a CUDA GPU are present" if chosen == "vllm" else (
        # vLLM's CPU build is never auto-chosen: its start costs tens of seconds where hf takes a few
        "no CUDA GPU" + ("; vLLM's CPU build runs only with --backend vllm" if has_vllm else "")
        if not has_cuda else "vLLM is not installed (pip install 'distill[vllm]')")
    log.info("backend auto -> %s (%s)", chosen, why)
    return chosen


def make_backend(model: str, options: BackendOptions, *, seed: int = 0, name: str | None = None) -> Backend:
    """Build the engine named by `name` (default: `options.backend`, resolved) for `model`."""
    name = name or resolve_backend(options.backend)
    if name == "hf":
        from distill.backends.hf import HFBackend

        return HFBackend(model, batch_size=options.batch_size, dtype=options.dtype)
    if name == "openai":
        from distill.backends.openai_compat import OpenAIBackend

        return OpenAIBackend(model, base_url=options.base_url or "", api_key_env=options.api_key_env,
                             concurrency=options.concurrency, max_retries=options.max_retries,
                             timeout=options.request_timeout, tokenizer=options.tokenizer,
                             backoff_base=options.retry_backoff)
    from distill.backends.vllm_engine import VLLMBackend

    return VLLMBackend(model, tensor_parallel_size=options.tensor_parallel_size,
                       gpu_memory_utilization=options.gpu_memory_utilization,
                       max_model_len=options.max_model_len, dtype=options.dtype,
                       max_inflight=options.max_inflight, seed=seed, engine_args=options.vllm_kwargs)
