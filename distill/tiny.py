"""Tiny offline models: a byte-level BPE tokenizer trained on the spot and random
Qwen2 / Qwen3 / Llama weights, with the chat templates of the real families.

Nothing here touches the Hub. Tests, `distill demo` and the notebook's offline
mode build their models with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# Chat templates of the families a student or teacher comes from, reduced to what matters.
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
# DeepSeek-R1-Distill: assistant turns lose everything up to </think>, and the generation
# prompt pre-fills '<think>\n' (the two traps the trainer and generate must survive).
R1_DISTILL_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{- message['content'] }}"
    "{%- elif message['role'] == 'user' %}{{- '<｜User｜>' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- set content = message['content'] %}"
    "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1] %}{%- endif %}"
    "{{- '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<｜Assistant｜><think>\\n' }}{%- endif %}"
)

# DeepSeek-V3.1: one model, two modes, switched by the `thinking` variable. Thinking off (the default)
# closes an empty think block in the generation prompt; on, it opens one. Assistant turns keep only what
# follows </think>, as R1-Distill's do.
V31_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{- message['content'] }}"
    "{%- elif message['role'] == 'user' %}{{- '<｜User｜>' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- set content = message['content'] %}"
    "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1] %}{%- endif %}"
    "{{- '<｜Assistant｜></think>' + content + '<｜end▁of▁sentence｜>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<｜Assistant｜>' }}"
    "{%- if thinking is defined and thinking %}{{- '<think>' }}{%- else %}{{- '</think>' }}{%- endif %}"
    "{%- endif %}"
)

# Qwen3 (dense, hybrid thinking): ChatML; `enable_thinking` false writes an empty think block into the
# generation prompt ('<think>\n\n</think>\n\n'), true (the default) leaves the turn open. Assistant turns
# keep their reasoning only after the last user turn (earlier ones lose everything up to </think>).
QWEN3_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- set ns = namespace(last_query_index=messages|length - 1) %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.last_query_index = loop.index0 %}{%- endif %}"
    "{%- endfor %}"
    "{%- for message in messages %}"
    "{%- set content = message['content'] %}"
    "{%- if message['role'] == 'user' or (message['role'] == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- set reasoning = '' %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning) %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + content }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)

# gpt-oss (harmony): the model writes its reasoning in the analysis channel and its answer in the final
# one, each a message of its own: '<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final
# <|message|>…<|return|>'. The markers are special tokens, gone from text decoded without them.
HARMONY_TEMPLATE = (
    "{{- '<|start|>system<|message|>Reasoning: ' + (reasoning_effort | default('medium')) + '<|end|>' }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{- '<|start|>developer<|message|>' + message['content'] + '<|end|>' }}"
    "{%- elif message['role'] == 'user' %}{{- '<|start|>user<|message|>' + message['content'] + '<|end|>' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- if loop.last and message.get('thinking') %}"
    "{{- '<|start|>assistant<|channel|>analysis<|message|>' + message['thinking'] + '<|end|>' }}"
    "{%- endif %}"
    "{{- '<|start|>assistant<|channel|>final<|message|>' + message['content'] }}"
    "{{- '<|return|>' if loop.last else '<|end|>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start|>assistant' }}{%- endif %}"
)

FAMILIES: dict[str, dict[str, Any]] = {
    "qwen": {"template": QWEN_TEMPLATE, "bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>",
             "special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "arch": "qwen2"},
    "llama": {"template": LLAMA3_TEMPLATE, "bos": "<|begin_of_text|>", "eos": "<|eot_id|>",
              "pad": "<|finetune_right_pad_id|>",
              "special": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                          "<|eot_id|>", "<|finetune_right_pad_id|>"], "arch": "llama"},
    "r1": {"template": R1_DISTILL_TEMPLATE, "bos": "<｜begin▁of▁sentence｜>", "eos": "<｜end▁of▁sentence｜>",
           "pad": "<｜▁pad▁｜>",
           "special": ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
                       "<｜▁pad▁｜>"], "arch": "qwen2"},
}
FAMILIES["v31"] = {**FAMILIES["r1"], "template": V31_TEMPLATE}
FAMILIES["qwen3"] = {**FAMILIES["qwen"], "template": QWEN3_TEMPLATE, "arch": "qwen3"}
# a harmony-template teacher on a Qwen2 body: the template and the markers are what the tests read
FAMILIES["harmony"] = {"template": HARMONY_TEMPLATE, "bos": "<|startoftext|>", "eos": "<|return|>", "pad": "<|endoftext|>",
                       "special": ["<|startoftext|>", "<|endoftext|>", "<|start|>", "<|end|>", "<|message|>",
                                   "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>"], "arch": "qwen2"}
# Reasoning markers are ordinary (non-special) added tokens, as in the R1-Distill and Qwen3
# vocabularies: they survive decoding with skip_special_tokens=True.
THINK_TOKENS = ["<think>", "</think>"]

DEFAULT_CORPUS = [
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "First, compute 12 + 7 = 19. Then 19 * 3 = 57. So the answer is \\boxed{57}.",
    "Let x be the number of apples. Then 3x + 2 = 11, so x = 3. Therefore \\boxed{3}.",
    "We need the sum of the first n integers: n(n+1)/2. For n = 10 this is 55.",
    "Wait, let me check that again. 7 times 8 is 56, not 54. So the total is 56.",
    "The probability is \\frac{1}{2}, since each outcome is equally likely.",
    "def solve(n):\n    return sum(range(n + 1))\n",
    "Answer: A. The correct option is B because the derivative is 2x.",
    "所以答案是十二。我们先计算七加五等于十二。让我们一步一步地思考这个问题。",
    "Hmm, okay. So the question asks for the remainder when 100 is divided by 7, which is 2.",
] * 4


def build_tokenizer(family: str = "qwen", corpus: Iterable[str] | None = None, vocab_size: int = 600, *,
                    digits: bool = False, template: str | None = None, special: Sequence[str] | None = None):
    """A byte-level BPE tokenizer with `family`'s special tokens (or `special`, at ids 0, 1, …) and chat
    template (or `template`).

    `digits` makes every digit a token of its own (with the space before it: ' 7' is one token),
    as Qwen2 splits digits: a tiny model then adds numbers digit by digit instead of memorising a
    token for every number it saw.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILIES[family]
    tokenizer = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r" ?\d"), behavior="isolated"),
                                                        byte_level]) if digits else byte_level)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special or spec["special"]),
                                  show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(corpus or DEFAULT_CORPUS), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=spec["bos"], eos_token=spec["eos"],
                                   pad_token=spec["pad"], clean_up_tokenization_spaces=False)
    fast.add_tokens(THINK_TOKENS)
    fast.chat_template = template or spec["template"]
    return fast


def build_model(tokenizer: Any, family: str = "qwen", *, hidden_size: int = 64, layers: int = 2,
                heads: int = 4, kv_heads: int = 2, intermediate_size: int | None = None,
                max_positions: int = 4096, seed: int = 0):
    """Random weights of a Qwen2, Qwen3 or Llama causal LM sized for `tokenizer`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config, Qwen3Config

    spec = FAMILIES[family]
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv_heads,
                  intermediate_size=intermediate_size or 4 * hidden_size, max_position_embeddings=max_positions,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    if spec["arch"] == "qwen3":  # Qwen3 sets head_dim apart from hidden_size / heads (128 by default)
        config = Qwen3Config(**common, head_dim=hidden_size // heads)
    else:
        config = Qwen2Config(**common) if spec["arch"] == "qwen2" else LlamaConfig(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # sampling defaults as the DeepSeek-R1-Distill checkpoints ship them
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id,
                                               do_sample=True, temperature=0.6, top_p=0.95)
    return model


def save_tiny(path: str | Path, family: str = "qwen", *, corpus: Iterable[str] | None = None,
              vocab_size: int = 600, seed: int = 0, **model_kwargs: Any) -> Path:
    """Build and save a tiny model + tokenizer of `family` to `path`; returns the path."""
    path = Path(path)
    tokenizer = build_tokenizer(family, corpus, vocab_size)
    model = build_model(tokenizer, family, seed=seed, **model_kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def synthetic_tokenizer(vocab_size: int, family: str = "qwen"):
    """A byte-level BPE tokenizer with exactly `vocab_size` tokens, built without training.

    For speed and memory measurements at real model shapes (Qwen2.5's 151,936-token
    vocabulary, Llama-3's 128,256): every id decodes, so an engine can sample any of
    them. Its merges are synthetic, so it compresses text poorly; fine for benchmarks.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILIES[family]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    specials = spec["special"] + THINK_TOKENS
    budget = vocab_size - len(specials)
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []
    tokens = list(alphabet)
    left = 0
    while len(vocab) < budget:
        for right in alphabet[:64]:
            new = tokens[left] + right
            if new not in vocab:
                vocab[new] = len(vocab)
                merges.append((tokens[left], right))
                tokens.append(new)
                if len(vocab) >= budget:
                    break
        left += 1
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=spec["bos"], eos_token=spec["eos"],
                                   pad_token=spec["pad"], clean_up_tokenization_spaces=False)
    fast.add_special_tokens({"additional_special_tokens": [t for t in spec["special"]
                                                           if t not in (spec["bos"], spec["eos"], spec["pad"])]})
    fast.add_tokens(THINK_TOKENS)
    fast.chat_template = spec["template"]
    return fast
