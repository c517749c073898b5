"""The student of `distill train`: loaded through distill.training.modeling, with its optimizer, the Liger
check and the parameter count the run logs."""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING, Any

import torch

from distill.chat import first_line
from distill.errors import ConfigError
from distill.train.config import TrainConfig
from distill.training.modeling import Hardware, load_model, lora_config

if TYPE_CHECKING:
    from distill.train.plan import TrainPlan

log = logging.getLogger(__name__)


def check_liger(hw: Hardware) -> None:
    if hw.device != "cuda":
        raise ConfigError("--liger needs a CUDA GPU (Liger kernels are Triton kernels); drop --liger on this machine")
    if importlib.util.find_spec("liger_kernel") is None:
        raise ConfigError("--liger needs the liger-kernel package: pip install 'distill[liger]'")


def load_student(cfg: TrainConfig, plan: TrainPlan) -> Any:
    """The student ready for Trainer: full weights, or a PEFT model with LoRA adapters on a
    frozen (optionally 4-bit) base. `use_cache` is off: with a KV cache transformers would not
    keep packed sequences apart."""
    model = load_model(cfg.student, plan.hardware, dtype=getattr(torch, plan.weights_dtype), attention=plan.attention,
                       quantize=cfg.method == "qlora")
    model.config.use_cache = False
    if cfg.method == "full":
        return model
    return add_adapters(model, cfg)


def add_adapters(model: Any, cfg: TrainConfig) -> Any:
    from peft import get_peft_model

    # Activation checkpointing is non-reentrant (see trainer.training_arguments), which lets gradients
    # reach the adapters although the embeddings are frozen. peft's prepare_model_for_kbit_training
    # is not used: it upcasts embeddings and head to float32, 4.4 GB more for a 7B Qwen, which a
    # 24 GB card cannot spare.
    try:
        return get_peft_model(model, lora_config(cfg))
    except ValueError as exc:
        raise ConfigError(f"--lora-target-modules {','.join(cfg.lora_target_modules)}: {first_line(exc)}") from None


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit weights counted by their element count, not their bytes."""
    trainable = total = 0
    for parameter in model.parameters():
        n = parameter.numel()
        if parameter.__class__.__name__ == "Params4bit":
            n *= 2
        total += n
        if parameter.requires_grad:
            trainable += n
    return trainable, total
