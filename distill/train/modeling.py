"""Loading the student for full, LoRA or QLoRA training on what this machine has."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from distill.chat import first_line
from distill.errors import ConfigError, ModelError
from distill.train.config import TrainConfig

if TYPE_CHECKING:
    from distill.train.plan import TrainPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hardware:
    device: str
    """'cuda' or 'cpu'"""
    bf16: bool
    """bf16 autocast is supported (Ampere or newer)"""

    @classmethod
    def detect(cls) -> Hardware:
        if torch.cuda.is_available():
            return cls("cuda", torch.cuda.is_bf16_supported())
        return cls("cpu", False)


def launcher() -> str:
    """How accelerate launched this process: 'fsdp', 'deepspeed' or 'plain' (one process or DDP)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true"):
        return "deepspeed"
    return "plain"


def weights_dtype(cfg: TrainConfig, hw: Hardware) -> torch.dtype:
    """float32 master weights for full training (bf16 weights updated by AdamW at lr 1e-5 lose most
    updates to rounding); a bf16 frozen base for LoRA on GPUs that have bf16; float32 on CPU."""
    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    if hw.bf16 and cfg.method != "full":
        return torch.bfloat16
    return torch.float32


def attention_kernel(cfg: TrainConfig, hw: Hardware) -> str:
    """Every choice here keeps packed examples apart: flash-attention through the sequence
    boundaries, sdpa and eager through the block-diagonal mask built from position_ids."""
    if cfg.attn_implementation != "auto":
        if cfg.attn_implementation.startswith("flash") and hw.device != "cuda":
            raise ConfigError(f"--attn-implementation {cfg.attn_implementation} needs a CUDA GPU; use sdpa")
        return cfg.attn_implementation
    if hw.device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def optimizer_name(cfg: TrainConfig, hw: Hardware) -> str:
    if cfg.optimizer != "auto":
        from transformers.training_args import OptimizerNames

        names = [o.value for o in OptimizerNames]
        if cfg.optimizer not in names:
            raise ConfigError(f"--optimizer {cfg.optimizer!r} is not a transformers optimizer; pick one of "
                              f"{', '.join(names[:12])} …")
        return cfg.optimizer
    if hw.device != "cuda":
        return "adamw_torch"
    # QLoRA's paged optimizer: optimizer states move to CPU when a long sequence spikes GPU memory
    return "paged_adamw_8bit" if cfg.method == "qlora" else "adamw_torch_fused"


def check_bitsandbytes(device: str) -> str:
    """The bitsandbytes version, after a real NF4 quantize + 4-bit matmul on `device`.

    Older bitsandbytes releases are CUDA-only and some platforms have no kernels at all, which
    would otherwise surface as an obscure error deep inside model loading.
    """
    try:
        import bitsandbytes as bnb
        import bitsandbytes.functional as bnb_functional
    except Exception as exc:
        raise ModelError(f"--method qlora needs bitsandbytes, which cannot be imported here ({first_line(exc)}); "
                         "pip install bitsandbytes, or use --method lora") from None
    version = getattr(bnb, "__version__", "?")
    try:
        weight = torch.randn(64, 128, device=device)
        packed, state = bnb_functional.quantize_4bit(weight, quant_type="nf4", compress_statistics=True)
        x = torch.randn(2, 128, device=device)
        out = bnb.matmul_4bit(x, packed.t(), quant_state=state)
        if out.shape != (2, 64) or not torch.isfinite(out).all():
            raise RuntimeError("the 4-bit matmul returned a wrong result")
    except Exception as exc:
        raise ModelError(f"--method qlora: bitsandbytes {version} cannot run 4-bit NF4 on {device} "
                         f"({first_line(exc)}); use --method lora, a CUDA GPU, or a bitsandbytes release with "
                         f"{device} kernels") from None
    return version


def check_liger(hw: Hardware) -> None:
    if hw.device != "cuda":
        raise ConfigError("--liger needs a CUDA GPU (Liger kernels are Triton kernels); drop --liger on this machine")
    if importlib.util.find_spec("liger_kernel") is None:
        raise ConfigError("--liger needs the liger-kernel package: pip install 'distill[liger]'")


def check_student(student: str) -> None:
    """Fail in one line, before --out is touched, when `student` cannot be loaded as a model: no such
    directory, no config.json, no weights."""
    from transformers import AutoConfig

    path = Path(student).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelError(f"the student {student!r} holds no config.json, so it is not a saved model; give the "
                         "directory a model was saved to (save_pretrained) or a Hub id")
    try:
        AutoConfig.from_pretrained(student)
    except Exception as exc:
        raise ModelError(f"cannot load the student {student!r}: {first_line(exc)}; give a local model directory "
                         "or a reachable Hub id of a causal LM") from None
    weights = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "model*.bin")
    if path.is_dir() and not any(any(path.glob(pattern)) for pattern in weights):
        raise ModelError(f"the student {student!r} holds no weights (*.safetensors or pytorch_model*.bin); copy "
                         "them in or give the directory the model was saved to")


def load_student(cfg: TrainConfig, plan: TrainPlan) -> Any:
    """The student ready for Trainer: full weights, or a PEFT model with LoRA adapters on a
    frozen (optionally 4-bit) base. `use_cache` is off: with a KV cache transformers would not
    keep packed sequences apart."""
    from transformers import AutoModelForCausalLM

    hw = plan.hardware
    dtype = getattr(torch, plan.weights_dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": plan.attention}
    where = launcher()
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if hw.bf16 else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
            # FSDP can only shard the packed 4-bit weights when they are stored in the dtype of the
            # other parameters (FSDP-QLoRA)
            bnb_4bit_quant_storage=dtype if where == "fsdp" else torch.uint8)
    if hw.device == "cuda" and where == "plain":
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    try:
        model = AutoModelForCausalLM.from_pretrained(cfg.student, **kwargs)
    except Exception as exc:
        raise ModelError(f"cannot load the student {cfg.student!r}: {first_line(exc)}; give a local model "
                         "directory or a reachable Hub id of a causal LM") from None
    model.config.use_cache = False
    if cfg.method == "full":
        return model
    return add_adapters(model, cfg)


def student_identity(student: str) -> str:
    """What the student is, for the resume check: a sha256 over the files of a local directory (contents,
    so an edit that keeps sizes and times is seen too), or a Hub id with the commit it resolves to."""
    from distill.train.data import file_digest

    path = Path(student).expanduser()
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
            digest.update(f"{file.name}\0{file_digest(file)}\n".encode())
        return "sha256:" + digest.hexdigest()
    from huggingface_hub import model_info, snapshot_download

    try:
        if not os.environ.get("HF_HUB_OFFLINE"):
            return f"{student}@{model_info(student).sha}"
    except Exception:  # no network: what the local cache holds is what from_pretrained will load
        pass
    try:
        return f"{student}@{Path(snapshot_download(student, local_files_only=True)).name}"
    except Exception:
        return student


def add_adapters(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = list(cfg.lora_target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"
    # Activation checkpointing is non-reentrant (see trainer.training_arguments), which lets gradients
    # reach the adapters although the embeddings are frozen. peft's prepare_model_for_kbit_training
    # is not used: it upcasts embeddings and head to float32, 4.4 GB more for a 7B Qwen, which a
    # 24 GB card cannot spare.
    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=targets, task_type="CAUSAL_LM", bias="none")
    try:
        return get_peft_model(model, config)
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


def has_tokenizer_files(path: str) -> bool:
    directory = Path(path)
    if not directory.is_dir():
        return True  # a Hub id: let from_pretrained say what is wrong
    names = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    return any((directory / name).is_file() for name in names)
