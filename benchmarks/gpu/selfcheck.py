"""On the GPU machine, after `wheels.py install`: does everything the suite needs import and run?

    python3 benchmarks/gpu/selfcheck.py --groups suite --out selfcheck.json        # before training
    python3 benchmarks/gpu/selfcheck.py --groups suite,vllm --out selfcheck.json   # before generation

suite: torch sees the GPU; distill's stages import; bitsandbytes quantizes to NF4 and runs a 4-bit
matmul on CUDA (distill's own check_bitsandbytes); trl, datasets, math-verify (a real verify),
pebble, py3langid, liger-kernel import. vllm: vllm, its FA3 kernels for Hopper and its custom ops
import; openai imports; flashinfer and the CuTe DSL are reported (optional: a failure there names
the opt-NN batches to carry only if generation later fails). Exit 1 when a required check fails.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))


def version(module: str) -> str:
    imported = importlib.import_module(module)
    return str(getattr(imported, "__version__", "?")) + f"  ({Path(imported.__file__ or '?').parent})"


def check_torch() -> str:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA GPU")
    x = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
    if not torch.isfinite(x @ x).all():
        raise RuntimeError("a bf16 matmul gave non-finite values")
    return f"{torch.__version__} cuda {torch.version.cuda} on {torch.cuda.get_device_name(0)}"


def check_bnb() -> str:
    from distill.training.modeling import check_bitsandbytes

    return f"bitsandbytes {check_bitsandbytes('cuda')}: NF4 quantize + 4-bit matmul on CUDA ok"


def check_math_verify() -> str:
    from math_verify import parse, verify

    if not verify(parse("$\\frac{1}{2}$"), parse("The answer is $0.5$")):
        raise RuntimeError("math-verify did not find 1/2 = 0.5")
    return version("math_verify")


def check_distill() -> str:
    import distill.filter
    import distill.generate
    import distill.train  # noqa: F401

    return version("distill")


def check_flash_attn() -> str:
    import importlib.util

    return "installed" if importlib.util.find_spec("flash_attn") else "absent: distill trains with sdpa attention"


def check_vllm() -> str:
    from vllm import LLM, SamplingParams  # noqa: F401

    return version("vllm")


def check_vllm_kernels() -> str:
    import vllm._C_stable_libtorch  # noqa: F401
    from vllm.vllm_flash_attn.flash_attn_interface import (
        FA2_AVAILABLE,
        FA3_AVAILABLE,
        is_fa_version_supported,
    )

    if not FA3_AVAILABLE or not is_fa_version_supported(3):
        raise RuntimeError("vLLM's FA3 kernels (the Hopper attention) are unavailable")
    return f"FA3 available; FA2 {'available' if FA2_AVAILABLE else 'not carried (opt-NN overlay; unused on Hopper)'}"


GROUPS: dict[str, list[tuple[str, Callable[[], str], bool]]] = {
    "suite": [("torch", check_torch, True), ("distill", check_distill, True), ("bitsandbytes", check_bnb, True),
              ("transformers", lambda: version("transformers"), True), ("peft", lambda: version("peft"), True),
              ("accelerate", lambda: version("accelerate"), True), ("datasets", lambda: version("datasets"), True),
              ("trl", lambda: version("trl"), True), ("math_verify", check_math_verify, True),
              ("pebble", lambda: version("pebble"), True), ("py3langid", lambda: version("py3langid"), True),
              ("pyarrow", lambda: version("pyarrow"), True), ("liger_kernel", lambda: version("liger_kernel"), False),
              ("flash_attn", check_flash_attn, False)],
    "vllm": [("vllm", check_vllm, True), ("vllm kernels", check_vllm_kernels, True),
             ("openai", lambda: version("openai"), True), ("flashinfer", lambda: version("flashinfer"), False),
             ("cutlass (CuTe DSL)", lambda: version("cutlass"), False)],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="suite")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"python": sys.version.split()[0], "path": sys.path[:6], "checks": {}}
    failed = []
    for group in args.groups.split(","):
        for name, check, required in GROUPS[group]:
            started = time.perf_counter()
            try:
                outcome = {"ok": True, "detail": check()}
            except Exception as exc:
                outcome = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:500],
                           "traceback": traceback.format_exc()[-2000:]}
                if required:
                    failed.append(name)
            outcome.update(required=required, seconds=round(time.perf_counter() - started, 2))
            report["checks"][name] = outcome
            mark = "ok  " if outcome["ok"] else ("FAIL" if required else "warn")
            print(f"{mark} {name:20s} {outcome['detail']}", flush=True)
    report["failed_required"] = failed
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if failed:
        print(f"REQUIRED CHECKS FAILED: {', '.join(failed)}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
