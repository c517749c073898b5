"""Offline vLLM: the engine stays full, finished prompts stream out.

`LLM.generate` on chunks of prompts leaves the GPU idle at the end of every
chunk while the longest sample finishes (with 32k-token reasoning that tail is
long). Instead up to `max_inflight` prompts sit in the engine's queue, each
finished prompt is handed back (and written) at once, and a new one takes its
place: full throughput and at most the in-flight prompts lost on a crash.

Every prompt samples with its own seed (derived from the run's seed and its id),
so results do not depend on batching or on what a crashed run had finished.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from distill.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    Sample,
    SamplingParams,
    WeightsOptions,
    derive_seed,
)
from distill.chat import ensure_chat_template, first_line, render_prompt
from distill.completion import generation_prefill, restore_prefill
from distill.config import require
from distill.errors import BackendError, ModelError

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class VLLMOptions(WeightsOptions):
    tensor_parallel_size: int = field(default=1, metadata={"resume": "free"})
    """vllm backend: GPUs to shard the model over."""
    gpu_memory_utilization: float = field(default=0.9, metadata={"resume": "free"})
    """vllm backend: share of GPU memory vLLM may take."""
    max_model_len: int | None = field(default=None, metadata={"resume": "must-match"})
    """vllm backend: context length to reserve (default: the model's)."""
    max_inflight: int = field(default=4096, metadata={"resume": "free"})
    """vllm backend: prompts queued in the engine at once; finished ones are written while the rest run."""
    vllm_args: str | None = field(default=None, metadata={"resume": "must-match"})
    """vllm backend: more vllm.LLM arguments as a JSON object, e.g. '{"enable_prefix_caching": true}'."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.tensor_parallel_size >= 1, "tensor_parallel_size", "must be at least 1")
        require(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization", "must be in (0, 1]")
        require(self.max_inflight >= 1, "max_inflight", "must be at least 1")
        require(self.vllm_args is None or _json_object(self.vllm_args) is not None, "vllm_args",
                "must be a JSON object")

    @property
    def engine_args(self) -> dict:
        return _json_object(self.vllm_args) if self.vllm_args else {}


def _json_object(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class VLLMBackend(Backend):
    name = "vllm"
    options: VLLMOptions

    def __init__(self, model: str, options: VLLMOptions, *, seed: int = 0):
        try:
            from vllm import LLM
        except ImportError as exc:
            raise BackendError(f"the vllm backend needs vLLM: pip install 'distill[vllm]' ({first_line(exc)})") from None
        import torch

        if not torch.cuda.is_available():
            raise BackendError("the vllm backend needs a CUDA GPU; use --backend hf on a CPU")
        super().__init__(model, options, seed=seed)
        try:
            self.llm = LLM(model=model, tensor_parallel_size=options.tensor_parallel_size,
                           gpu_memory_utilization=options.gpu_memory_utilization,
                           max_model_len=options.max_model_len, dtype=options.dtype, seed=seed,
                           **options.engine_args)
        except Exception as exc:
            raise ModelError(f"vLLM cannot load {model!r}: {first_line(exc)}") from None
        self.tokenizer = self.llm.get_tokenizer()
        ensure_chat_template(self.tokenizer, model)

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> Iterator[GenerationResult]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        todo = iter([r for r in requests if r.pending])
        inflight: dict[str, tuple[GenerationRequest, str]] = {}
        rejected: list[GenerationResult] = []

        def refill() -> None:
            for request in todo:
                text = render_prompt(self.tokenizer, request.messages)
                prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                sampling = VLLMSamplingParams(
                    n=params.n, temperature=params.temperature, top_p=params.top_p, top_k=0,
                    max_tokens=params.max_tokens, seed=derive_seed(params.seed, request.key),
                    skip_special_tokens=True, output_kind=RequestOutputKind.FINAL_ONLY)
                try:  # the prompt id is the engine's request id, so finished outputs map straight back
                    engine.add_request(request.key, TokensPrompt(prompt_token_ids=prompt_ids), sampling)
                except ValueError as exc:  # e.g. a prompt longer than --max-model-len: this prompt fails
                    rejected.append(GenerationResult(request.key, error=first_line(exc)))
                    continue
                inflight[request.key] = (request, generation_prefill(text))
                if len(inflight) >= self.options.max_inflight:
                    return

        refill()
        try:
            while inflight or rejected:
                yield from rejected
                rejected.clear()
                for output in engine.step() if inflight else ():
                    if not output.finished or output.request_id not in inflight:
                        continue
                    request, prefill = inflight.pop(output.request_id)
                    samples = [Sample(restore_prefill(prefill, o.text),
                                      "length" if o.finish_reason == "length" else "stop", len(o.token_ids))
                               for o in sorted(output.outputs, key=lambda o: o.index)]
                    yield GenerationResult(request.key, samples, prompt_tokens=len(output.prompt_token_ids or []))
                refill()
        finally:
            if inflight:  # interrupted: do not leave requests running in the engine
                engine.abort_request(list(inflight))

    def close(self) -> None:
        import gc

        import torch

        del self.llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
