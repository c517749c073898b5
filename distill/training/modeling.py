"""Loading a model to train (full, LoRA or QLoRA) on what this machine has, the checks that refuse a
model in one line before --out is touched, and a model's identity for the resume check. `distill train` and `distill rl` both load through here, so
the 4-bit quantization and the LoRA adapters are configured in one place each."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from distill.chat import first_line
from distill.errors import ConfigError, ModelError
from distill.runs import file_digest

if TYPE_CHECKING:
    from distill.training.options import TrainingOptions


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


def weights_dtype(dtype: str, method: str, hw: Hardware, *, full_in_float32: bool) -> torch.dtype:
    """The dtype weights are loaded in for --dtype auto: bfloat16 on GPUs that have it, float32 on CPU.

    With `full_in_float32` (distill train), full training keeps float32 master weights under bf16
    autocast: bf16 weights updated by AdamW at lr 1e-5 lose most updates to rounding. A frozen base
    under adapters loses nothing by being bf16."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if hw.bf16 and not (full_in_float32 and method == "full"):
        return torch.bfloat16
    return torch.float32


def attention_kernel(attn_implementation: str, hw: Hardware) -> str:
    """--attn-implementation resolved: flash_attention_2 on a GPU that has it installed, else sdpa."""
    if attn_implementation != "auto":
        if attn_implementation.startswith("flash") and hw.device != "cuda":
            raise ConfigError(f"--attn-implementation {attn_implementation} needs a CUDA GPU; use sdpa")
        return attn_implementation
    if hw.device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


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


def check_student(model: str, *, role: str = "student") -> None:
    """Fail in one line, before --out is touched, when `model` cannot be loaded as a model: no such
    directory, no config.json, no weights."""
    from transformers import AutoConfig

    path = Path(model).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelError(f"the {role} {model!r} holds no config.json, so it is not a saved model; give the "
                         "directory a model was saved to (save_pretrained) or a Hub id")
    try:
        AutoConfig.from_pretrained(model)
    except Exception as exc:
        raise ModelError(f"cannot load the {role} {model!r}: {first_line(exc)}; give a local model directory "
                         "or a reachable Hub id of a causal LM") from None
    weights = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "model*.bin")
    if path.is_dir() and not any(any(path.glob(pattern)) for pattern in weights):
        raise ModelError(f"the {role} {model!r} holds no weights (*.safetensors or pytorch_model*.bin); copy "
                         "them in or give the directory the model was saved to")


def student_identity(model: str) -> str:
    """What a model is, for the resume check: a sha256 over the files of a local directory (contents,
    so an edit that keeps sizes and times is seen too), or a Hub id with the commit it resolves to."""
    path = Path(model).expanduser()
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
            digest.update(f"{file.name}\0{file_digest(file)}\n".encode())
        return "sha256:" + digest.hexdigest()
    from huggingface_hub import model_info, snapshot_download

    try:
        if not os.environ.get("HF_HUB_OFFLINE"):
            return f"{model}@{model_info(model).sha}"
    except Exception:  # no network: what the local cache holds is what from_pretrained will load
        pass
    try:
        return f"{model}@{Path(snapshot_download(model, local_files_only=True)).name}"
    except Exception:
        return model


def has_tokenizer_files(path: str) -> bool:
    directory = Path(path)
    if not directory.is_dir():
        return True  # a Hub id: let from_pretrained say what is wrong
    names = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    return any((directory / name).is_file() for name in names)


def nf4_config(hw: Hardware, dtype: torch.dtype) -> Any:
    """The 4-bit NF4 quantization of a QLoRA base (or a 4-bit teacher), with double quantization;
    `dtype` is what the other weights are loaded in."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if hw.bf16 else torch.float32,
        # FSDP can only shard the packed 4-bit weights when they are stored in the dtype of the other
        # parameters (FSDP-QLoRA)
        bnb_4bit_quant_storage=dtype if launcher() == "fsdp" else torch.uint8)


def load_model(source: str | Path, hw: Hardware, *, dtype: torch.dtype, attention: str, quantize: bool = False,
               role: str = "student") -> Any:
    """A causal LM in `dtype` (its linear layers in 4-bit NF4 with `quantize`), on this process's GPU
    under a plain launch (FSDP and DeepSpeed place the weights themselves)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attention}
    if quantize:
        kwargs["quantization_config"] = nf4_config(hw, dtype)
    if hw.device == "cuda" and launcher() == "plain":
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as exc:
        raise ModelError(f"cannot load the {role} {str(source)!r}: {first_line(exc)}; give a local model "
                         "directory or a reachable Hub id of a causal LM") from None


def lora_config(opts: TrainingOptions) -> Any:
    """The LoRA adapters of --lora-r, --lora-alpha, --lora-dropout and --lora-target-modules."""
    from peft import LoraConfig

    targets: str | list[str] = list(opts.lora_target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM", bias="none")


def merge_adapter(base: str | Path, adapter_dir: Path, merged_dir: Path, *, dtype: Any, tokenizer: Any,
                  gen_config: Any) -> Path:
    """Load the full-precision base, apply the adapter, fold it into the weights and save a plain model.

    A QLoRA adapter is merged into the original (not the 4-bit) weights: what every serving
    engine loads, at the cost of the small difference between the NF4 base it trained against
    and the full-precision one.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.config.use_cache = True
    merged.generation_config = gen_config
    merged.save_pretrained(merged_dir, safe_serialization=True)
    tokenizer.save_pretrained(merged_dir)
    return merged_dir
