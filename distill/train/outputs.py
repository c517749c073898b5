"""What a finished run leaves in --out: the model or adapter, tokenizer with its chat template, a
generation config that stops at the end-of-turn token, an optional merged model, the model card and
the loss curve."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from distill.report import markdown_table, save_curves
from distill.traces import sidecar
from distill.train.config import TrainConfig, TrainResult
from distill.train.plan import TrainPlan
from distill.train.render import ChatFormat

log = logging.getLogger(__name__)

# the sampling DeepSeek recommends for R1 and its distilled students (greedy decoding loops)
SAMPLING = {"do_sample": True, "temperature": 0.6, "top_p": 0.95}


def stop_token_ids(fmt: ChatFormat, *existing: Any) -> list[int]:
    """The end-of-turn token first, then every EOS id the student already had, without repeats."""
    ids = [fmt.end_of_turn_id]
    for value in existing:
        for token in ([value] if isinstance(value, int) else list(value or [])):
            if isinstance(token, int) and token not in ids:
                ids.append(token)
    return ids


def generation_config(base: Any, tokenizer: Any, fmt: ChatFormat) -> Any:
    """A clean generation config that stops at the end-of-turn token and samples as R1 students should."""
    from transformers import GenerationConfig

    previous = getattr(base, "generation_config", None)
    eos = stop_token_ids(fmt, getattr(previous, "eos_token_id", None), tokenizer.eos_token_id)
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                            pad_token_id=tokenizer.pad_token_id, **SAMPLING)


def set_end_of_turn(tokenizer: Any, fmt: ChatFormat) -> None:
    """Make the saved tokenizer's EOS the end-of-turn token, as chat releases do (Qwen2.5-Instruct's
    is <|im_end|>, Llama-3.1-Instruct's <|eot_id|>), so tools that stop at tokenizer.eos_token stop."""
    if tokenizer.eos_token != fmt.end_of_turn:
        log.info("the saved tokenizer's EOS becomes the end-of-turn token %s (was %s)", fmt.end_of_turn,
                 tokenizer.eos_token)
        if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
            tokenizer.pad_token = tokenizer.eos_token  # keep padding on the old token, never on the stop token
        tokenizer.eos_token = fmt.end_of_turn


def filter_counts(kept: str) -> dict[str, Any]:
    """The record counts of the filter report beside the kept file (`<stem>.report.json`: its `records`
    section, input / kept / rejected), if there is one."""
    path = sidecar(kept, "report.json")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    records = report.get("records") if isinstance(report, dict) else None
    if not isinstance(records, dict):
        return {}
    return {k: v for k, v in records.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def loss_points(log_history: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    points = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    return [s for s, _ in points], [v for _, v in points]


def run_loss(log_history: list[dict[str, Any]]) -> float | None:
    """Mean loss per optimizer step over the whole run, a resumed one included: each logged loss (the mean
    since the previous log) weighs as many steps as it covers. The Trainer's own training_loss only
    covers the steps since the last resume."""
    total = steps = previous = 0
    for step, loss in zip(*loss_points(log_history)):
        total += loss * (step - previous)
        steps += step - previous
        previous = step
    return total / steps if steps else None


def save_loss_curve(path: Path, log_history: list[dict[str, Any]], title: str) -> Path | None:
    steps, losses = loss_points(log_history)
    if not steps:
        return None
    return save_curves(path, {"train loss": (steps, losses)}, title=title, xlabel="optimizer step",
                       ylabel="loss (per trained token)")


def card_settings(cfg: TrainConfig, plan: TrainPlan) -> list[list[str]]:
    """The hyperparameters as (setting, value) rows, with what 'auto' resolved to."""
    rows = [["method", cfg.method], ["epochs", f"{cfg.epochs:g}"], ["learning rate", f"{plan.learning_rate:g}"],
            ["schedule", cfg.lr_scheduler + (f" (floor {cfg.min_lr_ratio:g} × lr)" if cfg.min_lr_ratio else "")
             + f", warmup {cfg.warmup_ratio:g} of the steps"],
            ["weight decay", f"{cfg.weight_decay:g}"], ["max grad norm", f"{cfg.max_grad_norm:g}"],
            ["max sequence length", f"{cfg.max_seq_len:,}"],
            ["micro-batch", f"{cfg.micro_batch_tokens:,} tokens, packed without padding"],
            ["gradient accumulation", str(cfg.grad_accum)]]
    rows += plan.rows()
    if cfg.method != "full":
        rows += [["LoRA", f"r {cfg.lora_r}, alpha {cfg.lora_alpha}, dropout {cfg.lora_dropout:g}, "
                          f"on {', '.join(cfg.lora_target_modules)}"]]
    if cfg.method == "qlora":
        rows += [["base quantization", "bitsandbytes 4-bit NF4, double quantization"]]
    rows += [["seed", str(cfg.seed)]]
    return rows


def model_card(cfg: TrainConfig, plan: TrainPlan, result: TrainResult, *, has_curve: bool) -> str:
    """README.md of the trained student."""
    data, fmt, merged = result.data, plan.chat_format, result.merged is not None
    adapter = cfg.method != "full"
    teachers = ", ".join(f"`{t}` ({n:,})" for t, n in sorted(data.teachers.items(), key=lambda kv: -kv[1]))
    counts = filter_counts(cfg.kept)
    lines = [
        "---",
        f"base_model: {cfg.student}",
        f"library_name: {'peft' if adapter else 'transformers'}",
        "pipeline_tag: text-generation",
        "tags: [distill, reasoning, long-cot, sft]",
        "---",
        "",
        f"# Reasoning student distilled from {', '.join(sorted(data.teachers)) or 'a teacher'}",
        "",
        f"`{cfg.student}` fine-tuned by `distill train` ({cfg.method}) on long chain-of-thought traces: each "
        "example is the prompt (not trained), then `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` and the "
        f"end-of-turn token `{fmt.end_of_turn}` (trained).",
        "",
        "## Data",
        "",
        f"- kept traces: `{Path(cfg.kept).resolve()}` ({data.records:,} records, sha256 `{plan.kept_sha256}`); "
        f"teachers: {teachers or 'unknown'}",
        f"- student: `{cfg.student}` ({plan.student_identity})",
        f"- {data.line(cfg.max_seq_len)}",
        f"- longest kept example {data.longest:,} tokens, shortest {data.shortest:,}",
    ]
    if counts:
        lines.append("- filter report: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    lines += [
        "",
        "## Training",
        "",
        f"{result.steps:,} optimizer steps"
        + (f", final loss {result.final_loss:.4f}" if result.final_loss is not None else "")
        + (f"; resumed from `{Path(result.resumed_from).name}`" if result.resumed_from else "") + ".",
        "",
        markdown_table(["setting", "value"], card_settings(cfg, plan)),
        "",
        "## Use",
        "",
        f"Chat template: {plan.template_source}. Generation stops at `{fmt.end_of_turn}` (listed first in "
        "`generation_config.json`'s `eos_token_id`); sampling defaults are DeepSeek's advice for R1 "
        "students: temperature 0.6, top-p 0.95.",
        "",
        "```bash",
    ]
    if not adapter or merged:
        lines.append(f"vllm serve {cfg.out.rstrip('/')}{'/merged' if merged else ''}")
    else:
        lines.append(f"vllm serve {cfg.student} --enable-lora --lora-modules student={cfg.out.rstrip('/')}"
                     f" --max-lora-rank {cfg.lora_r}")
    lines += ["```", ""]
    if adapter:
        lines += ["This directory holds a LoRA adapter for the base model"
                  + ("; `merged/` holds it folded into the base as a plain model." if merged else "."), ""]
    if has_curve:
        lines += ["![training loss](loss.png)", ""]
    return "\n".join(lines)
