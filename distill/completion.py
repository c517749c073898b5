"""The text helpers of a reasoning completion, re-exported from `distill.shape` (which owns them
with `TraceShape`); import them from there."""

from distill.shape import (  # noqa: F401
    THINK_CLOSE,
    THINK_OPEN,
    fold_reasoning_field,
    generation_prefill,
    join_reasoning,
    restore_prefill,
    split_reasoning,
)
