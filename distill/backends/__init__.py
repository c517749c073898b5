"""Generation engines behind one interface: hf, openai, vllm (and auto).

`BACKENDS` pairs each engine with its options class; a stage config inherits every
options class (so the flags stay flat) and each engine is built from its own.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Iterable
from typing import Any

from distill.backends.base import (
    Backend,
    EngineOptions,
    GenerationRequest,
    GenerationResult,
    Sample,
    SamplingParams,
    derive_seed,
    sample_seed,
)
from distill.backends.hf import HFBackend, HFOptions
from distill.backends.openai_compat import OpenAIBackend, OpenAIOptions
from distill.backends.vllm_engine import VLLMBackend, VLLMOptions
from distill.config import flag, project

log = logging.getLogger(__name__)

__all__ = ["AUTO", "BACKENDS", "Backend", "GenerationRequest", "GenerationResult", "Sample", "SamplingParams",
           "derive_seed", "make_backend", "owners", "resolve_backend", "sample_seed", "unused_options"]

BACKENDS: dict[str, tuple[type[Backend], type[EngineOptions]]] = {
    "vllm": (VLLMBackend, VLLMOptions),
    "openai": (OpenAIBackend, OpenAIOptions),
    "hf": (HFBackend, HFOptions),
}
AUTO = ("vllm", "hf")
"""The backends 'auto' chooses between."""


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


def owners(field_name: str) -> list[str]:
    """The backends whose options class has `field_name`."""
    return [name for name, (_, options) in BACKENDS.items()
            if field_name in {f.name for f in dataclasses.fields(options)}]


def unused_options(options: Any, backends: Iterable[str]) -> list[str]:
    """The backend options `options` sets away from their default that none of `backends` reads."""
    read = {f.name for name in backends for f in dataclasses.fields(BACKENDS[name][1])}
    every = {f.name: f for _, opts in BACKENDS.values() for f in dataclasses.fields(opts)}
    return [name for name, f in every.items() if name not in read and getattr(options, name) != f.default]


def make_backend(model: str, options: Any, *, seed: int = 0, name: str | None = None) -> Backend:
    """Build the engine named by `name` (default: `options.backend`, resolved) for `model`, from the
    fields of `options` (a config inheriting the backends' options classes) its options class has."""
    name = name or resolve_backend(options.backend)
    for unused in unused_options(options, [name]):  # only 'auto' lets such a flag through
        log.warning("%s applies to --backend %s only; auto chose %s, which does not read it",
                    flag(unused), " or ".join(owners(unused)), name)
    engine, options_class = BACKENDS[name]
    return engine(model, project(options_class, options), seed=seed)
