"""Model FLOPs of a decoder-only transformer training step, for MFU.

Counted (multiply-adds × 2), forward + backward (the backward of a matmul is two
matmuls of the same size: 3× the forward in all):

    dense      6 · P_layers · T          P_layers = L · (d·h·dh + 2·d·kv·dh + h·dh·d + 3·d·ff)
                                         (q, k, v, o projections and the gated MLP's gate, up, down)
    head       6 · V · d · T_trained     the output head on the positions the loss is taken on
    attention  Σ_seq 6 · L · h · dh · s·(s+1)
                                         QKᵀ and PV over the s(s+1)/2 (query, key) pairs a causal
                                         mask leaves in a sequence of s tokens, each 2·h·dh FLOPs
                                         per pair forward, ×3 with the backward

T is the number of tokens in the step, s the length of each packed example (attention never
crosses example boundaries), T_trained the tokens whose next-token loss is taken (the head's
output is not needed elsewhere). Left out, as in the PaLM/Megatron convention: embedding
lookups, norms, rotary, softmax, activations, biases, the optimizer, and the recomputation that
activation checkpointing adds (MFU counts the model's FLOPs, not the hardware's).

`palm_flops` gives the PaLM paper's per-token formula (6·N + 12·L·h·dh·s, attention counted
without the causal half and N including the head), to compare with published MFU figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shape:
    """The numbers of a decoder-only model that its matmul FLOPs depend on."""
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    @classmethod
    def of(cls, config: Mapping[str, Any] | Any) -> Shape:
        """From a transformers config (object or config.json dict) of a Llama/Qwen2-style model."""
        get = config.get if isinstance(config, Mapping) else lambda key, default=None: getattr(config, key, default)
        hidden, heads = get("hidden_size"), get("num_attention_heads")
        return cls(layers=get("num_hidden_layers"), hidden=hidden, heads=heads,
                   kv_heads=get("num_key_value_heads") or heads, head_dim=get("head_dim") or hidden // heads,
                   intermediate=get("intermediate_size"), vocab=get("vocab_size"))

    @property
    def layer_matmul_params(self) -> int:
        d, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        return d * q + 2 * d * kv + q * d + 3 * d * self.intermediate

    @property
    def body_matmul_params(self) -> int:
        """Weights of every linear layer in the blocks (the head and embeddings excluded)."""
        return self.layers * self.layer_matmul_params

    @property
    def head_params(self) -> int:
        return self.vocab * self.hidden


def step_flops(shape: Shape, sequence_lengths: Iterable[int], trained_tokens: int) -> dict[str, int]:
    """Model FLOPs of one training step over packed sequences of these lengths."""
    lengths = [int(s) for s in sequence_lengths]
    tokens = sum(lengths)
    dense = 6 * shape.body_matmul_params * tokens
    head = 6 * shape.head_params * trained_tokens
    attention = 6 * shape.layers * shape.heads * shape.head_dim * sum(s * (s + 1) for s in lengths)
    return {"dense": dense, "head": head, "attention": attention, "total": dense + head + attention,
            "tokens": tokens}


def palm_flops(shape: Shape, sequence_length: int, tokens: int) -> int:
    """PaLM (Chowdhery et al. 2022, appendix B): tokens · (6·N + 12·L·h·dh·s), N = body + head weights."""
    n = shape.body_matmul_params + shape.head_params
    return tokens * (6 * n + 12 * shape.layers * shape.heads * shape.head_dim * sequence_length)


def mfu(flops: float, seconds: float, peak_flops_per_s: float) -> float:
    """Achieved model FLOP/s over the peak."""
    return flops / seconds / peak_flops_per_s
