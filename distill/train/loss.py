"""Chunked output head + cross-entropy: the loss without ever holding a micro-batch's full logits.

With a 152k vocabulary, the logits of a 32k-token micro-batch are 32k × 152k
floats: 19 GiB in float32 (the standard loss upcasts them), more than a 7B
QLoRA base and its activations together. Here the head is applied to the
hidden states of the *trained* positions only (prompt positions need no
logits), a chunk of `chunk_tokens` at a time, each chunk under activation
checkpointing: the forward keeps only a scalar per chunk, and the backward
recomputes one chunk's logits at a time. Loss and gradients equal the standard
path (tested); the price is one extra head matmul per chunk in the backward.

It is switched on by swapping, on the model instance, the head's forward for
the identity and the model's `loss_function` for the chunked one, so the
hidden states reach the loss where the logits would. Everything happens inside
the model's own forward, so FSDP's parameter gathering and PEFT's wrapping
see the usual calls.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


def _chunk_loss_sum(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    targets: torch.Tensor) -> torch.Tensor:
    logits = F.linear(hidden, weight, bias).float()
    return F.cross_entropy(logits, targets, reduction="sum")


def chunked_causal_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, *,
                           bias: torch.Tensor | None = None, num_items_in_batch: Any = None,
                           chunk_tokens: int = 4096, shift_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Causal-LM cross-entropy of `hidden @ weight.T (+ bias)` against `labels` (shifted by one, -100 ignored),
    summed over chunks and divided by `num_items_in_batch` (or the number of trained tokens)."""
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    targets = shift_labels.reshape(-1).to(hidden.device)
    states = hidden.reshape(-1, hidden.shape[-1])
    trained = (targets != IGNORE_INDEX).nonzero(as_tuple=True)[0]
    states, targets = states.index_select(0, trained), targets.index_select(0, trained)
    if len(targets) == 0:
        total = hidden.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) intact
    else:
        total = sum(checkpoint(_chunk_loss_sum, states[start:start + chunk_tokens], weight, bias,
                               targets[start:start + chunk_tokens], use_reentrant=False)
                    for start in range(0, len(targets), chunk_tokens))
    if num_items_in_batch is None:
        return total / max(len(targets), 1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def _identity(hidden_states: torch.Tensor) -> torch.Tensor:
    return hidden_states


def causal_lm_core(model: Any) -> Any:
    """The transformers *ForCausalLM module inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def enable_chunked_loss(model: Any, chunk_tokens: int) -> bool:
    """Make `model`'s forward compute its loss chunk-wise (see module doc); False when it has no plain
    linear head to chunk (e.g. an adapter on the head)."""
    core = causal_lm_core(model)
    head = getattr(core, "lm_head", None)
    if not isinstance(head, torch.nn.Linear) or type(head) is not torch.nn.Linear:
        return False

    def loss_function(logits: torch.Tensor, labels: torch.Tensor, vocab_size: int | None = None,
                      num_items_in_batch: Any = None, shift_labels: torch.Tensor | None = None,
                      **_: Any) -> torch.Tensor:
        # `logits` are the hidden states here: the head's forward is the identity while this is on
        return chunked_causal_lm_loss(logits, head.weight, labels, bias=head.bias,
                                      num_items_in_batch=num_items_in_batch, chunk_tokens=chunk_tokens,
                                      shift_labels=shift_labels)

    head.forward = _identity
    core.loss_function = loss_function
    return True


def disable_chunked_loss(model: Any) -> None:
    """Undo `enable_chunked_loss`: the head computes logits again (before saving or generating)."""
    core = causal_lm_core(model)
    head = getattr(core, "lm_head", None)
    if head is not None and "forward" in head.__dict__:
        del head.forward
    if "_loss_function" in core.__dict__:
        del core._loss_function


def full_logits_bytes(tokens: int, vocab_size: int) -> int:
    """Memory of one micro-batch's float32 logits on the standard loss path."""
    return tokens * vocab_size * 4
