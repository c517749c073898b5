"""`distill rl`: GRPO with the filter's rule rewards, or on-policy distillation from a teacher.

    from distill.rl import RLConfig, rl
    result = rl(RLConfig(prompts="prompts.jsonl", student="student/", out="student-rl/"))
"""

from __future__ import annotations

from typing import Any

from distill.rl.config import RLConfig, RLResult

__all__ = ["RLConfig", "RLResult", "rl"]


def rl(cfg: RLConfig, **kwargs: Any) -> RLResult:
    """Train cfg.student on cfg.prompts into cfg.out; see `distill.rl.run.rl`."""
    # torch, transformers and TRL load only when a run starts, so `distill --help` stays fast
    from distill.rl.run import rl as run

    return run(cfg, **kwargs)
