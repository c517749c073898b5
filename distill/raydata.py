"""`distill generate --ray`: the same run as a Ray Data pipeline over vLLM engine actors.

    distill generate prompts.jsonl --teacher MODEL --backend vllm --out traces/ --ray auto --ray-replicas 4

The driver (this process) loads the prompts, skips what --decontaminate finds, renders each chat
with the teacher's template and tokenizes it, exactly as the vllm backend does (`prepare_prompt`).
Every sample still missing from --out becomes one row with its own sampling params and seed
(`sample_arguments`: Ray's vLLM stage keeps one output per request, and the vllm backend samples
the same way), so a record is field for field what `--backend vllm` writes. `ray.data.llm` runs the
rows through a pool of vLLM engine actors (`vLLMEngineProcessorConfig`: one engine per replica, on
--tensor-parallel-size GPUs; Ray restarts an actor that dies and retries its batches) and streams
them back.

The driver is the one writer: it collects a prompt's samples and appends them in one write to a
directory of shards with a manifest (`distill.shards.ShardWriter`), which every stage reads as one
trace file. Resuming is by record id, as for a file: a rerun reads the ids on disk, repairs what a
killed driver left (a torn last line, a prompt cut short) and sends only the missing ones. The run
manifest (`traces.run.json` beside the directory, with the same fingerprint as a run without --ray)
refuses a rerun with other must-match settings; the lock refuses a second writer. A row that fails
in the engine (after Ray's retries of dead actors) fails its prompt: it is listed in the summary,
nothing of it is written, the exit status says the run is partial, and a rerun retries it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.backends import SamplingParams
from distill.backends.vllm_engine import FLAGS, check_context, prepare_prompt, sample_arguments
from distill.chat import channel_marker_ids, decode_keeping, ensure_chat_template, first_line, load_tokenizer
from distill.errors import BackendError, ConfigError, ModelError, OutputError
from distill.options import LOCAL_RAY
from distill.progress import Progress
from distill.runs import COMPLETE, NEW, claim, fingerprint
from distill.shape import fold_channels, restore_prefill
from distill.shards import ShardWriter
from distill.traces import intact_length, last_lines_start, read_traces, shard_files, sidecar

log = logging.getLogger(__name__)

INSTALL = "pip install 'distill[ray]' (Ray Data with ray[data,serve], which vLLM's Ray metrics import)"

REQUIRED = ("id", "prompt_id", "sample", "messages", "completion", "finish_reason")


def import_ray() -> Any:
    """The ray module, or a ConfigError that says how to install it."""
    try:
        import ray
        import ray.data.llm
    except ImportError as exc:
        raise ConfigError(f"--ray needs Ray Data, which is not installed ({first_line(exc)}): {INSTALL}") from None
    return ray


# ---------------------------------------------------------------- connecting


def _probe(address: str) -> None:
    """A HOST:PORT (or ray://HOST:PORT) nobody listens on is refused in a second, not after Ray's minute of
    retries."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except OSError as exc:
        raise BackendError(f"--ray {address}: cannot reach a Ray cluster there ({exc.strerror or exc}); start one "
                           "(`ray start --head` on the head node) or give its address: auto on a node of the "
                           "cluster, ray://HEAD:10001 from outside it") from None


@contextlib.contextmanager
def connected(address: str, *, verbose: bool = False):
    """Ray, connected to the cluster at `address` (LOCAL_RAY: one started here for the run, ended after it)."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report phoned home from a run
    if not verbose:
        # what failed reaches the user as one line (the CLI's error); Ray Data logs each failure with its
        # full stack trace and Ray's C++ core its own lines too: with -v they are all there
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        for name, level in (("ray.data", logging.CRITICAL), ("ray.llm", logging.WARNING), ("ray", logging.WARNING)):
            logging.getLogger(name).setLevel(level)
    if address not in (LOCAL_RAY, "auto"):
        _probe(address)
    try:
        ray.init(address=None if address == LOCAL_RAY else address, include_dashboard=False,
                 log_to_driver=verbose, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BackendError(f"--ray {address}: cannot connect to a Ray cluster ({first_line(exc)}); start one "
                           "(`ray start --head`) or give its address (auto on a node of it, ray://HEAD:10001)") \
            from None
    try:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver's own progress line says it (see Progress)
        context.print_on_execution_start = False
        yield ray
    finally:
        ray.shutdown()


# ---------------------------------------------------------------- the run


@dataclass
class _Pending:
    """A prompt whose samples are in flight: written once all of them are back, in sample order."""

    prefill: str
    samples: list[int]
    arrived: dict[int, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None


def generate_on_ray(cfg: Any) -> Any:
    """`distill.generate.generate` for a config with `ray` set (see the module docstring)."""
    from distill.generate import manifest

    import_ray()
    if cfg.backend not in ("vllm", "auto"):  # auto: the cluster's nodes run vLLM, whatever this machine has
        raise ConfigError(f"--ray runs the teacher in vLLM engines on the cluster: use --backend vllm (got --backend "
                          f"{cfg.backend}); a served teacher is reached from one machine with --backend openai")
    if cfg.shard is not None:
        raise ConfigError("--ray spreads the whole run over the cluster itself: drop --shard (it splits a run by "
                          "hand over separate jobs)")
    out = Path(cfg.out.rstrip("/") or cfg.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; --ray writes a directory of shards: give a directory such as "
                          f"{out.with_suffix('')}/ (or drop --ray to resume that file on one machine)")
    summary_path = sidecar(out, "summary.json")
    with claim({"--out": out, "--out's summary": summary_path, "--out's manifest": manifest(out).path},
               {"PROMPTS": cfg.prompts, "--teacher": cfg.teacher, "--tokenizer": cfg.tokenizer},
               locked=("--out",), directories=("--out",)):
        state = _check_resume(cfg, out)
        return _run(cfg, out, summary_path, state)


def _check_resume(cfg: Any, out: Path) -> str:
    from distill.generate import manifest

    if not out.exists() or not any(out.iterdir()):
        return NEW
    if not (out / "manifest.json").is_file() and not cfg.overwrite:
        raise OutputError(f"--out {out} is a directory that distill generate --ray did not write (it has no "
                          "manifest.json); choose another --out, or pass --overwrite to replace it")
    state = manifest(out).resume(fingerprint(cfg), overwrite=cfg.overwrite)
    if state == NEW and not cfg.overwrite:
        raise OutputError(f"{out} exists but has no run manifest ({manifest(out).path.name}): its settings are "
                          "unknown; pass --overwrite to replace it or choose another --out")
    return state


def _read_directory(out: Path, cfg: Any, by_id: dict[str, Any]
                    ) -> tuple[set[str], list[str], list[int], tuple[Path, int] | None, list[str]]:
    """Ids on disk with their finish reasons and token counts, and (shard, size) to cut the last shard back
    to, with why. Only the last shard can be torn: each run writes shards of its own and a prompt's samples
    go in one write, so a killed driver leaves at most a torn line and a prompt cut short at the very end."""
    files = shard_files(out)
    done: set[str] = set()
    finishes: list[str] = []
    tokens: list[int] = []
    cut, repairs = None, []
    for index, shard in enumerate(files):
        end = None
        last = index == len(files) - 1
        if last:
            end = intact_length(shard)
            if end < shard.stat().st_size:
                repairs.append(f"removed a torn last line ({shard.stat().st_size - end} bytes) left by an "
                               "interrupted run; its record will be produced again")
        group: list[dict[str, Any]] = []
        for _, record in read_traces(shard, required=REQUIRED, end=end):
            prompt = by_id.get(record["prompt_id"])
            if prompt is not None and record["messages"] != prompt.messages:
                raise OutputError(f"{shard}: prompt {record['prompt_id']!r} has other messages in this run (the "
                                  "PROMPTS file changed under the same id); pass --overwrite to replace the output "
                                  "or choose another --out")
            if record["id"] in done:
                raise OutputError(f"{shard}: record {record['id']!r} is written twice; pass --overwrite to redo "
                                  "the output")
            if group and group[0]["prompt_id"] != record["prompt_id"]:
                group = []
            group.append(record)
            done.add(record["id"])
            finishes.append(record["finish_reason"])
            if isinstance(record.get("completion_tokens"), int):
                tokens.append(record["completion_tokens"])
        if last and group and len(group) < cfg.n and group[0]["prompt_id"] in by_id:
            # the last prompt was cut short (a write torn mid-prompt): produce it again whole
            for record in group:
                done.discard(record["id"])
                finishes.pop()
                if isinstance(record.get("completion_tokens"), int):
                    tokens.pop()
            end = last_lines_start(shard, len(group), end=end)
            repairs.append(f"removed {len(group)} of {cfg.n} samples of prompt {group[0]['prompt_id']!r}, cut "
                           "short by an interrupted run; the prompt will be generated again whole")
        if last and end is not None and end < shard.stat().st_size:
            cut = (shard, end)
    return done, finishes, tokens, cut, repairs


def model_context(model: str) -> int:
    """The teacher's context length as vLLM takes it by default (max_position_embeddings of its config)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model).get_text_config()
    except Exception as exc:
        raise ModelError(f"--teacher {model}: cannot read its config ({first_line(exc)}); give a model directory "
                         "or Hub id the driver can read too") from None
    return int(getattr(config, "max_position_embeddings", 0) or 1 << 30)


def eos_ids(model: str, tokenizer: Any) -> set[int]:
    """The tokens vLLM stops a sample on: the tokenizer's EOS and the generation config's (its stop ids).
    Ray's vLLM stage returns no finish reason: a sample whose last token is one of these stopped."""
    from transformers import GenerationConfig

    try:
        ids = GenerationConfig.from_pretrained(model).eos_token_id
    except Exception:  # no generation_config.json: the tokenizer's EOS alone, as vLLM does
        ids = None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return set(ids)


def engine_kwargs(cfg: Any, *, cpu: bool) -> dict[str, Any]:
    """The vLLM engine arguments of each replica: those the vllm backend starts its engine with."""
    from distill.backends.vllm_engine import check_engine_args

    extra = cfg.engine_args
    with contextlib.suppress(ImportError):  # a driver without vLLM: the workers check them
        check_engine_args(extra, FLAGS)
    kwargs = dict(tensor_parallel_size=cfg.tensor_parallel_size, gpu_memory_utilization=cfg.gpu_memory_utilization,
                  max_model_len=cfg.max_model_len, dtype=cfg.dtype, seed=cfg.seed, **extra)
    if kwargs["max_model_len"] is None:
        del kwargs["max_model_len"]
    if cpu:
        # vLLM's CPU build fails on seeded requests split over steps (see vllm_engine._load_engine); an engine
        # over several CPU sockets runs its workers as processes (Ray's stage would ask for GPU bundles)
        kwargs.setdefault("enable_chunked_prefill", False)
        if cfg.tensor_parallel_size > 1:
            kwargs.setdefault("distributed_executor_backend", "mp")
    return kwargs


def _worker_env(*, cpu: bool) -> dict[str, str]:
    """The driver's vLLM settings (VLLM_CPU_KVCACHE_SPACE, …) for the engine actors. Ray's engine is async,
    which needs vLLM's engine in a process of its own, whatever this process runs with."""
    env = {k: v for k, v in os.environ.items() if k.startswith("VLLM_")}
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"
    if cpu:
        # Ray sets OMP_NUM_THREADS to an actor's CPUs (1 here: the rest of the node runs Ray Data's own
        # tasks), which would leave a CPU engine one thread where vLLM on this machine takes every core
        env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)
    return env


def _run(cfg: Any, out: Path, summary_path: Path, state: str) -> Any:
    from distill.generate import (
        GenerateSummary,
        _params_dict,
        _record,
        _sampling,
        _token_stats,
        finish_run,
        finished_summary,
        manifest,
        run_prompts,
    )

    prompts, skipped = run_prompts(cfg)
    params: SamplingParams = _sampling(cfg)
    params_dict = _params_dict(params)
    by_id = {p.prompt_id: p for p in prompts}
    expected = {f"{p.prompt_id}:{s}" for p in prompts for s in range(cfg.n)}
    done: set[str] = set()
    finishes: list[str] = []
    tokens: list[int] = []
    cut, repairs = None, []
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        done, finishes, tokens, cut, repairs = _read_directory(out, cfg, by_id)
        if state == COMPLETE and expected <= done and not repairs and summary_path.exists():
            return finished_summary(cfg, out, len(prompts), done & expected, finishes, tokens, params_dict, skipped)
        if done:
            log.info("resuming %s: %d of %d records already written", out, len(done & expected), len(expected))

    # the driver renders and tokenizes every prompt as the vllm backend does, and keeps its think pre-fill
    tokenizer = load_tokenizer(cfg.teacher)
    ensure_chat_template(tokenizer, cfg.teacher)
    context = cfg.max_model_len or model_context(cfg.teacher)
    check_context(params, context, FLAGS)
    stops = eos_ids(cfg.teacher, tokenizer)
    channels = channel_reader(tokenizer)
    pending: dict[str, _Pending] = {}
    failed: list[dict[str, str]] = []
    rows: list[dict[str, Any]] = []
    for prompt in prompts:
        missing = [s for s in range(cfg.n) if f"{prompt.prompt_id}:{s}" not in done]
        if not missing:
            continue
        prepared = prepare_prompt(tokenizer, prompt.messages, params.max_tokens, context, FLAGS,
                                  cfg.template_kwargs)
        if isinstance(prepared, str):
            failed.append({"prompt_id": prompt.prompt_id, "error": prepared})
            continue
        prompt_ids, prefill = prepared
        pending[prompt.prompt_id] = _Pending(prefill, missing)
        rows += [{"record_id": f"{prompt.prompt_id}:{s}", "prompt_id": prompt.prompt_id, "sample": s,
                  "tokenized_prompt": prompt_ids, "sampling_params": sample_arguments(params, prompt.prompt_id, s)}
                 for s in missing]

    progress = Progress("generate", total=len(expected), unit="record", initial=len(done & expected))
    new_records = new_tokens = 0
    startup = None  # seconds to the first record: the engines' start (and the first prompt's samples)
    if rows:
        with connected(cfg.ray, verbose=logging.getLogger("distill").isEnabledFor(logging.DEBUG)) as ray:
            cpu = not ray.cluster_resources().get("GPU", 0)
            processor = _processor(cfg, cpu=cpu)
            # only now that the cluster is there is the output touched: a run that cannot start leaves it be
            _prepare_output(cfg, out, summary_path, cut, repairs)
            manifest(out).write(fingerprint(cfg), complete=False)
            dataset = processor(ray.data.from_items(rows))
            started = time.perf_counter()
            first = None
            try:
                with ShardWriter(out) as writer:
                    for row in dataset.iter_rows():
                        key, sample = row["prompt_id"], int(row["sample"])
                        entry = pending[key]
                        result = ({"error": row["__inference_error__"]} if row.get("__inference_error__") else
                                  _sample(row, entry.prefill, params, context, stops, channels))
                        entry.arrived[sample] = result
                        if "error" in result and entry.error is None:
                            entry.error = f"sample {sample}: {result['error']}"[:300]
                        progress.update(1, tokens=result.get("completion_tokens", 0))
                        if len(entry.arrived) < len(entry.samples):
                            continue
                        del pending[key]
                        if entry.error is not None:
                            failed.append({"prompt_id": key, "error": entry.error})
                            progress.failed += 1
                            continue
                        records = [_record(by_id[key], s, _Done(**entry.arrived[s]), entry.arrived[s]["prompt_tokens"],
                                           cfg, params_dict) for s in entry.samples]
                        writer.write(records)
                        for record in records:
                            done.add(record["id"])
                            finishes.append(record["finish_reason"])
                            tokens.append(record["completion_tokens"])
                        new_records += len(records)
                        new_tokens += sum(r["completion_tokens"] for r in records)
                        first = first or time.perf_counter()
            except Exception as exc:
                raise _pipeline_error(exc, cfg) from None
            finally:
                progress.close()
            if first is not None:
                startup = first - started
    failed += [{"prompt_id": key, "error": "the pipeline ended without its samples"} for key in pending]
    elapsed = progress.elapsed
    summary = GenerateSummary(
        output=str(out), teacher=cfg.teacher, backend="vllm on ray" if rows else "none", prompts=len(prompts),
        records=len(done & expected), new_records=new_records,
        finish_reasons={reason: finishes.count(reason) for reason in sorted(set(finishes))},
        completion_tokens=_token_stats(tokens), elapsed_s=round(elapsed, 3),
        tokens_per_s=round(new_tokens / elapsed, 2) if elapsed > 0 else 0.0,
        failed_prompts=failed, complete=expected <= done, params={**params_dict, "n": cfg.n},
        contaminated_prompts=skipped, startup_s=None if startup is None else round(startup, 1))
    if not rows and manifest(out).read() is None:
        manifest(out).write(fingerprint(cfg), complete=False)
    if not out.exists():
        ShardWriter(out).close()  # an empty trace directory: every prompt failed before the cluster was asked
    return finish_run(cfg, out, summary_path, summary, tokens)


def channel_reader(tokenizer: Any) -> Callable[[Sequence[int], bool], str] | None:
    """For a harmony teacher (gpt-oss), how a sample is read: from its token ids with the channel markers
    kept, as the vllm backend reads it (Ray's generated_text lost the markers); None for any other."""
    marker_ids = channel_marker_ids(tokenizer)
    if not marker_ids:
        return None
    return lambda ids, cut: fold_channels(decode_keeping(tokenizer, list(ids), marker_ids), cut=cut)


@dataclass
class _Done:
    """A finished sample in the shape `distill.generate._record` reads (a backend's Sample)."""

    text: str
    finish_reason: str
    completion_tokens: int
    prompt_tokens: int | None = None


def _sample(row: dict[str, Any], prefill: str, params: SamplingParams, context: int, stops: set[int],
            channels: Callable[[Sequence[int], bool], str] | None = None) -> dict[str, Any]:
    """A row of Ray's vLLM stage as a sample: the text with the template's pre-fill put back (a harmony
    teacher's: its channels read from the token ids by `channels`), the finish reason as vLLM decides it
    (`check_stop`: its last token is a stop token, else it hit a length limit)."""
    generated = [int(t) for t in (row.get("generated_tokens") if row.get("generated_tokens") is not None else [])]
    prompt_tokens = int(row.get("num_input_tokens") or 0)
    if generated and generated[-1] in stops:
        reason = "stop"
    elif len(generated) >= params.max_tokens or prompt_tokens + len(generated) >= context:
        reason = "length"
    else:
        return {"error": f"vLLM ended the sample after {len(generated)} tokens without a stop token"}
    text = channels(generated, reason == "length") if channels is not None else \
        restore_prefill(prefill, str(row.get("generated_text") or ""))
    return {"text": text, "finish_reason": reason,
            "completion_tokens": len(generated), "prompt_tokens": prompt_tokens}


def _prepare_output(cfg: Any, out: Path, summary_path: Path, cut: tuple[Path, int] | None,
                    repairs: list[str]) -> None:
    if cfg.overwrite:
        if out.exists():
            shutil.rmtree(out)
        summary_path.unlink(missing_ok=True)
    elif cut is not None:
        os.truncate(*cut)
        for repair in repairs:
            log.warning("%s: %s", cut[0], repair)


def _processor(cfg: Any, *, cpu: bool) -> Any:
    """The Ray Data LLM processor: `ray_replicas` vLLM engine actors fed pre-tokenized rows, each row one
    request with its own sampling params; a row that fails comes back with its error instead of ending the
    run (`should_continue_on_error`)."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    if cpu:
        from distill.backends.vllm_engine import cpu_attention_refusal

        refusal = cpu_attention_refusal(cfg.teacher)
        if refusal is not None:
            raise ModelError(f"--teacher {cfg.teacher}: {refusal}; the cluster has no GPU, so its engines run on "
                             "CPUs")
    placement = {"bundles": [{"CPU": 1}] * cfg.tensor_parallel_size} if cpu else None
    config = vLLMEngineProcessorConfig(
        model_source=cfg.teacher, engine_kwargs=engine_kwargs(cfg, cpu=cpu), concurrency=cfg.ray_replicas,
        batch_size=cfg.ray_batch_size, max_concurrent_batches=max(1, -(-cfg.max_inflight // cfg.ray_batch_size)),
        chat_template_stage=False, tokenize_stage=False, detokenize_stage=False,  # the driver did those
        placement_group_config=placement, should_continue_on_error=True, log_engine_metrics=False,
        runtime_env={"env_vars": _worker_env(cpu=cpu)})
    return build_processor(config)


def _pipeline_error(exc: Exception, cfg: Any) -> Exception:
    """What ended the pipeline, in one line (the records finished so far are written)."""
    from distill.errors import DistillError

    if isinstance(exc, DistillError):
        return exc
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if "Error" in line and ":" in line), lines[0] if lines else
                  type(exc).__name__)
    if "vLLMEngineStageUDF" in text and ("__init__" in text or "creation task" in text or "ModelConfig" in text):
        return ModelError(f"the engine actors cannot load --teacher {cfg.teacher} ({reason[:300]}); check that "
                          "every node can read it (a path on a shared filesystem, or a Hub id) and that vLLM runs "
                          "it; the records finished so far are written")
    return BackendError(f"the Ray pipeline failed ({reason[:300]}); the records finished so far are written: rerun "
                        "the same command to generate the rest")

