"""Chat templates: rendering prompts with a model's own template, and the default
template for base models that have none.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.config import MUST_MATCH, Options, require
from distill.errors import ModelError

log = logging.getLogger(__name__)

# For base models without a chat template: the plain "User: … Assistant:" layout of
# DeepSeek-R1-Zero's prompt, ending each assistant turn with the model's EOS token so
# the student learns to stop.
DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n\n"
    "{% elif message['role'] == 'assistant' %}Assistant: {{ message['content'] }}{{ eos_token }}\n\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


def ensure_chat_template(tokenizer: Any, name: str) -> None:
    """Give a tokenizer without a chat template the documented default one."""
    if not getattr(tokenizer, "chat_template", None):
        log.warning("%s has no chat template; using distill's default 'User: … Assistant:' template "
                    "(distill.chat.DEFAULT_CHAT_TEMPLATE)", name)
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE


def parse_template_kwargs(text: str | None, flag: str = "--chat-template-kwargs") -> dict[str, Any]:
    """The JSON object of a --chat-template-kwargs option ({} when not given); ConfigError otherwise."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    require(isinstance(value, dict), flag.removeprefix("--").replace("-", "_"),
            f"must be a JSON object such as '{{\"enable_thinking\": true}}' (got {text!r})")
    return value


@dataclass(kw_only=True)
class ChatTemplateOptions(Options):
    """Variables a chat template reads besides the messages (hybrid-thinking families switch modes with them)."""

    chat_template_kwargs: str | None = field(default=None, metadata=MUST_MATCH)
    """Extra chat-template variables as a JSON object (YAML: a mapping): '{"enable_thinking": true}' for Qwen3, '{"thinking": true}' for DeepSeek-V3.1; passed to apply_chat_template, vLLM's chat kwargs and a server's chat_template_kwargs."""

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_template_kwargs(self.chat_template_kwargs)

    @property
    def template_kwargs(self) -> dict[str, Any]:
        return parse_template_kwargs(self.chat_template_kwargs)


_WARNED_IGNORED: set[tuple[str, str]] = set()


def unread_template_kwargs(tokenizer: Any, kwargs: dict[str, Any]) -> list[str]:
    """The names in `kwargs` that the tokenizer's chat template never mentions: passing them changes nothing."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # several named templates
        template = "".join(template.values())
    return [name for name in kwargs if name not in template]


def render_prompt(tokenizer: Any, messages: list[dict[str, str]], template_kwargs: dict[str, Any] | None = None) -> str:
    """The generation prompt as text: the messages, then the template's assistant header (with the
    template's extra variables: --chat-template-kwargs)."""
    kwargs = template_kwargs or {}
    for name in unread_template_kwargs(tokenizer, kwargs):
        key = (getattr(tokenizer, "name_or_path", ""), name)
        if key not in _WARNED_IGNORED:
            _WARNED_IGNORED.add(key)
            log.warning("the chat template of %s never reads %r: --chat-template-kwargs passes it, and it changes "
                        "nothing", key[0] or "this tokenizer", name)
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **kwargs)
    except Exception as exc:  # jinja errors from a user's template: say which template failed
        raise ModelError(f"the chat template failed to render a prompt: {exc}") from None
    if not isinstance(text, str):  # some tokenizers return a list for a single conversation
        text = text[0]
    return text


def channel_marker_ids(tokenizer: Any) -> set[int]:
    """The ids of the harmony markers (<|channel|>, <|message|> …) when the tokenizer's chat template writes
    harmony channels (gpt-oss), else an empty set.

    They are special tokens, so text decoded without special tokens loses them and with them which part
    was reasoning ('analysisTwo plus two.assistantfinal4'): a harmony teacher's completion is decoded with
    these kept (`decode_keeping`) and read by distill.shape.fold_channels."""
    from distill.shape import HARMONY_MARKERS

    template = getattr(tokenizer, "chat_template", None) or ""
    if "<|channel|>" not in str(template):
        return set()
    vocab = tokenizer.get_vocab()
    return {vocab[marker] for marker in HARMONY_MARKERS if marker in vocab}


def decode_keeping(tokenizer: Any, ids: list[int], kept: set[int]) -> str:
    """`ids` as text without special tokens, except those in `kept`, which stay as their text."""
    if not kept:
        return tokenizer.decode(ids, skip_special_tokens=True)
    pieces, run = [], []
    for token in ids:
        if token in kept:
            pieces.append(tokenizer.decode(run, skip_special_tokens=True))
            pieces.append(tokenizer.convert_ids_to_tokens(token))
            run = []
        else:
            run.append(token)
    pieces.append(tokenizer.decode(run, skip_special_tokens=True))
    return "".join(pieces)


THINKING_SWITCHES = ("enable_thinking", "thinking")
"""Template variables that switch a hybrid family's thinking mode (Qwen3, DeepSeek-V3.1), tried in this order."""
_SWITCH_PROBE = [{"role": "user", "content": "What is 2 + 2?"}]


def thinking_switch(tokenizer: Any, base: dict[str, Any]) -> str | None:
    """The variable that switches the template between thinking and not (found by rendering both ways, with
    the variables `base` besides), or None for a one-mode template."""
    template = getattr(tokenizer, "chat_template", None) or ""
    for name in THINKING_SWITCHES:
        if name in str(template) and (render_prompt(tokenizer, _SWITCH_PROBE, {**base, name: True})
                                      != render_prompt(tokenizer, _SWITCH_PROBE, {**base, name: False})):
            return name
    return None


def load_tokenizer(name: str, *, padding_side: str | None = None) -> Any:
    """Load a tokenizer with a one-line error that says what to check."""
    from transformers import AutoTokenizer

    if looks_local(name) and not Path(name).expanduser().exists():
        raise ModelError(f"cannot load a tokenizer from {name!r}: no such directory; check the path (or give a "
                         "Hub id such as Qwen/Qwen2.5-1.5B)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as exc:
        raise load_error("a tokenizer from", name, exc) from None
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def looks_local(name: str) -> bool:
    """A path, not a Hub id ('org/name'): absolute, relative with ./ ../ ~, more than one '/', or a first
    component that is a local directory (`models/nope` beside a `models/` folder is a mistyped path)."""
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name:
        return True
    first, slash, _ = name.partition("/")
    return bool(slash) and Path(first).is_dir()


def load_error(what: str, name: str, exc: BaseException) -> ModelError:
    """The one line for a model or tokenizer `name` (not a local path, see looks_local) that failed to load.

    A name that is no local directory is looked up on the Hub; when the Hub cannot be reached (offline,
    HF_HUB_OFFLINE=1) transformers only says it could not connect, which reads as a network problem
    when the user mistyped a path: say both."""
    if hub_unreachable(exc) and not Path(name).expanduser().exists():
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") else ""
        return ModelError(f"cannot load {what} {name!r}: no such local directory {name}, and the Hub could not be "
                          f"reached{offline} to look it up as a model id; check the path (./ in front makes it "
                          "one), or go online to download the model")
    return ModelError(f"cannot load {what} {name!r}: {first_line(exc)}; give a local model directory or a Hub id "
                      "that is reachable")


def hub_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it came from) says the Hub could not be asked: no network, offline mode."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError)) or \
                "couldn't connect to" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
