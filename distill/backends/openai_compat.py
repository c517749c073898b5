"""Any OpenAI-compatible chat server: `vllm serve`, `transformers serve`, SGLang,
hosted APIs.

Async with bounded concurrency. Each request is retried with exponential
backoff and jitter on 429, 5xx, timeouts, dropped connections and empty replies
(honouring Retry-After); a prompt that still fails is reported, not written, so
a rerun picks it up. `n` is asked for natively; a server that returns fewer
choices gets the rest as single requests from then on. The API key is read from
the environment variable the user names and never stored, logged or echoed in
an error.

Token counts: a reply's usage counts all n choices together. `vllm serve` (found
by its /models listing, owned_by "vllm") is asked for each choice's token ids, so
every sample gets the count the engine generated, end-of-sequence token included,
as the vllm backend records it. Other servers' choices are counted with the
tokenizer (--tokenizer, default the model's), which is loaded before any request
is sent and runs off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import random
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from distill.backends.base import (
    Backend,
    EngineOptions,
    GenerationRequest,
    GenerationResult,
    Sample,
    SamplingParams,
    derive_seed,
    sample_seed,
)
from distill.config import FREE, require
from distill.errors import BackendError, ConfigError
from distill.shape import fold_channels, fold_reasoning_field, has_channels

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429}


class EmptyReply(Exception):
    """The server answered 200 with no choices or no text: worth another try."""


class _Fatal(Exception):
    """An error no retry can fix (authentication, unknown model): stop the whole run."""


@dataclass(kw_only=True)
class OpenAIOptions(EngineOptions):
    base_url: str | None = field(default=None, metadata=FREE)
    """openai backend: the server's base URL, e.g. http://localhost:8000/v1."""
    api_key_env: str | None = field(default=None, metadata=FREE)
    """openai backend: name of the environment variable holding the API key (the key is never written anywhere)."""
    tokenizer: str | None = field(default=None, metadata=FREE)
    """Tokenizer for exact token counts when the openai server reports one usage for n samples (default: the model's, if loadable)."""
    concurrency: int = field(default=64, metadata=FREE)
    """openai backend: requests in flight at once."""
    max_retries: int = field(default=6, metadata=FREE)
    """openai backend: retries per request on 429, 5xx, timeouts, dropped connections and empty replies."""
    request_timeout: float = field(default=1800.0, metadata=FREE)
    """openai backend: seconds before a request counts as timed out."""
    retry_backoff: float = field(default=1.0, metadata=FREE)
    """openai backend: first retry delay in seconds, doubled per attempt (with jitter, at most 60 s)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # the NAME of a variable: a key pasted here by mistake must not be echoed into logs or errors
        require(self.api_key_env is None or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env) is not None,
                "api_key_env", "takes the name of an environment variable that holds the key (e.g. "
                "OPENAI_API_KEY), not the key itself")
        require(self.concurrency >= 1, "concurrency", f"must be at least 1 (got {self.concurrency})")
        require(self.max_retries >= 0, "max_retries", f"must be ≥ 0 (got {self.max_retries})")
        require(self.request_timeout > 0, "request_timeout", "must be positive")
        require(self.retry_backoff >= 0, "retry_backoff", "must be ≥ 0")

    def check_chosen(self) -> None:
        require(bool(self.base_url), "base_url", "is required with --backend openai (e.g. http://localhost:8000/v1)")


class OpenAIBackend(Backend):
    name = "openai"
    options: OpenAIOptions
    backoff_cap = 60.0
    """Longest wait between two attempts, in seconds."""

    def __init__(self, model: str, options: OpenAIOptions, *, seed: int = 0):
        super().__init__(model, options, seed=seed)
        self.base_url = options.base_url or ""
        self._tokenizer_name = options.tokenizer or model
        self._tokenizer: Any = None
        self._warned_apportioned = False
        self.server: str | None = None
        """Who serves base_url, from its /models listing ('vllm'), once known; '' when it does not say."""
        self.ignores_n = False
        self.retries = 0
        self._api_key = ""
        if options.api_key_env:
            self._api_key = os.environ.get(options.api_key_env, "")
            if not self._api_key:
                # the value is echoed only when it reads as a variable name: a key pasted here by mistake
                # (hf_…, gsk_…) must not reach the console
                shown = options.api_key_env if re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", options.api_key_env) \
                    else "the variable it names"
                raise ConfigError(f"--api-key-env: {shown} is not set or empty in the environment; export it, "
                                  "or pass the NAME of the variable that holds the key")

    # -- secrets ---------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """Remove the API key from any text that may reach a log, a summary or an exception."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def error_text(self, exc: Any) -> str:
        """A server's error message, scrubbed whole and only then cut short: a cut first could split the
        key so that the scrub no longer finds it."""
        return self._scrub(_message(exc))[:200]

    # -- driving the event loop from a synchronous generator ----------------------------------
    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> Iterator[GenerationResult]:
        results: queue.Queue = queue.Queue()
        stop = threading.Event()
        pending = [r for r in requests if r.pending]
        if pending and params.n > 1:
            self._prepare_counts()

        def run() -> None:
            try:
                asyncio.run(self._run(pending, params, results, stop))
            except BaseException as exc:  # handed to the consumer thread and re-raised there
                results.put(exc)
            results.put(None)

        thread = threading.Thread(target=run, name="distill-openai", daemon=True)
        thread.start()
        try:
            while (item := results.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)

    def _prepare_counts(self) -> None:
        """Before the first request of an n > 1 run: find out whether the server reports each choice's
        tokens (vLLM does when asked), else load the tokenizer now rather than inside the event loop."""
        if self.server is None:
            self.server = self._server_owner()
            if self.server == "vllm":
                log.info("%s is vLLM: each sample is a request of its own with its own seed, as the offline "
                         "vllm backend samples", self.base_url)
        if self.server != "vllm":
            self._load_tokenizer()

    def _load_tokenizer(self) -> None:
        if self._tokenizer is None:
            try:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer_name)
            except Exception:
                self._tokenizer = False  # the counts are then shared out by text length (see _count_tokens)

    def _server_owner(self) -> str:
        """The `owned_by` of the server's models ('vllm' for vllm serve), '' when /models does not say."""
        import httpx

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            reply = httpx.get(self.base_url.rstrip("/") + "/models", headers=headers,
                              timeout=min(10.0, self.options.request_timeout))
            models = (reply.json().get("data") or []) if reply.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError):
            return ""  # not every server lists its models; the counts then come from the tokenizer
        owners = {m.get("owned_by") for m in models if isinstance(m, dict)}
        return "vllm" if owners == {"vllm"} else ""

    async def _run(self, requests: list[GenerationRequest], params: SamplingParams,
                   results: queue.Queue, stop: threading.Event) -> None:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=self.base_url, api_key=self._api_key or "EMPTY", max_retries=0,
                             timeout=self.options.request_timeout)
        semaphore = asyncio.Semaphore(self.options.concurrency)
        todo: asyncio.Queue = asyncio.Queue()
        for request in requests:
            todo.put_nowait(request)

        async def worker() -> None:
            while not stop.is_set():
                try:
                    request = todo.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results.put(await self._prompt(client, semaphore, request, params))

        try:
            workers = [asyncio.create_task(worker()) for _ in range(min(self.options.concurrency, len(requests)) or 1)]
            await asyncio.gather(*workers)
        except _Fatal as exc:
            raise BackendError(str(exc)) from None
        finally:
            await client.close()

    async def _prompt(self, client: Any, semaphore: asyncio.Semaphore, request: GenerationRequest,
                      params: SamplingParams) -> GenerationResult:
        samples: list[Sample] = []
        prompt_tokens = None
        try:
            # a vLLM server is asked for each sample as a request of its own, seeded as the offline vllm
            # backend seeds it (its prefix cache shares the prompt): the same teacher served or offline
            # writes the same traces. Another server gets n in one request (a hosted API bills the prompt
            # once) until it turns out to ignore n.
            if (not self.ignores_n and self.server != "vllm") or params.n == 1:
                samples, prompt_tokens = await self._call(client, semaphore, request, params, params.n,
                                                          derive_seed(params.seed, request.key))
                if len(samples) < params.n and not self.ignores_n:
                    self.ignores_n = True
                    log.info("%s returned %d choice(s) for n=%d: asking for the other samples one by one",
                             self.base_url, len(samples), params.n)
            missing = range(len(samples), params.n)
            # sample 0 always draws from the prompt's own seed, as a native-n request would, so
            # results do not depend on when a server was found to ignore n
            extra = await asyncio.gather(*(
                self._call(client, semaphore, request, params, 1, sample_seed(params.seed, request.key, i))
                for i in missing))
            for more, tokens in extra:
                samples.extend(more[:1])
                prompt_tokens = prompt_tokens or tokens
        except _Failed as exc:
            return GenerationResult(request.key, error=str(exc))
        return GenerationResult(request.key, samples[: params.n], prompt_tokens=prompt_tokens)

    async def _call(self, client: Any, semaphore: asyncio.Semaphore, request: GenerationRequest,
                    params: SamplingParams, n: int, seed: int) -> tuple[list[Sample], int | None]:
        import openai

        error = "no attempt made"
        for attempt in range(self.options.max_retries + 1):
            retry_after = None
            try:
                # vLLM's own field: each choice's token ids, the exact count of what it generated
                body: dict[str, Any] = {"return_token_ids": True} if self.server == "vllm" and n > 1 else {}
                if self.options.template_kwargs:  # vLLM's and SGLang's servers read it into the template
                    body["chat_template_kwargs"] = self.options.template_kwargs
                extra = {"extra_body": body} if body else {}
                async with semaphore:
                    response = await client.chat.completions.create(
                        model=self.model, messages=request.messages, n=n, temperature=params.temperature,
                        top_p=params.top_p, max_tokens=params.max_tokens, seed=seed, **extra)
                return await self._parse(response)
            except EmptyReply as exc:
                error = str(exc)
            except openai.APITimeoutError:
                error = f"timed out after {self.options.request_timeout:.0f} s"
            except openai.APIConnectionError as exc:
                error = f"connection failed ({self._scrub(str(exc.__cause__ or exc))})"
            except openai.APIStatusError as exc:
                status = exc.status_code
                error = f"HTTP {status}: {self.error_text(exc)}"
                if status in (401, 403):
                    raise _Fatal(f"{self.base_url} refused the credentials ({error}); check the key in the "
                                 "variable named by --api-key-env") from None
                if status == 404:
                    raise _Fatal(f"{self.base_url}: {error}; check --teacher (the served model name) "
                                 "and --base-url (usually ends in /v1)") from None
                if status not in RETRY_STATUS and status < 500:
                    raise _Failed(error) from None
                retry_after = _retry_after(exc)
            except openai.OpenAIError as exc:
                error = self._scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                # a 200 whose body is not a chat completion (not JSON, a choice without a message,
                # `choices: "x"`): the server is misbehaving, which is retried like a 5xx, then a failure
                error = self._scrub(f"malformed reply from the server ({type(exc).__name__}: {exc})")[:200]
                log.debug("prompt %s: %s", request.key, error, exc_info=True)
            if attempt == self.options.max_retries:
                break
            self.retries += 1
            delay = min(self.backoff_cap, self.options.retry_backoff * 2 ** attempt) * random.uniform(0.5, 1.5)
            log.debug("prompt %s: %s; retry %d in %.1f s", request.key, error, attempt + 1, delay)
            await asyncio.sleep(max(delay, retry_after or 0))
        raise _Failed(f"{error} (after {self.options.max_retries + 1} attempts)")

    async def _parse(self, response: Any) -> tuple[list[Sample], int | None]:
        choices = sorted(getattr(response, "choices", None) or [], key=lambda c: c.index or 0)
        if not choices:
            raise EmptyReply("empty reply (no choices)")
        texts = []
        token_ids = []
        for choice in choices:
            message = choice.message
            extra = getattr(message, "model_extra", None) or {}
            reasoning = extra.get("reasoning_content") or extra.get("reasoning")
            finish = "length" if choice.finish_reason == "length" else "stop"
            if not reasoning and has_channels(message.content or ""):
                # a server that sends a harmony teacher's channel markup as text (no reasoning parser)
                text = fold_channels(message.content, cut=finish == "length")
            else:
                text = fold_reasoning_field(reasoning, message.content, cut=finish == "length")
            if not text.strip():
                raise EmptyReply("empty reply (no text)")
            texts.append((text, finish))
            token_ids.append((getattr(choice, "model_extra", None) or {}).get("token_ids"))
        usage = getattr(response, "usage", None)
        completion_total = getattr(usage, "completion_tokens", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        if len(texts) == 1:
            counts: list[int | None] = [completion_total]
        elif all(isinstance(ids, list) for ids in token_ids):
            counts = [len(ids) for ids in token_ids]
        else:  # tokenizing n long texts takes a while: off the event loop, which keeps the other requests going
            counts = await asyncio.to_thread(self._count_tokens, [t for t, _ in texts], completion_total)
        return [Sample(text, finish, count) for (text, finish), count in zip(texts, counts)], prompt_tokens

    def _count_tokens(self, texts: list[str], total: int | None) -> list[int | None]:
        """Per-choice token counts when the server reports one usage for all n choices."""
        self._load_tokenizer()  # a no-op after generate() loaded it before the loop
        if self._tokenizer:
            return [len(ids) for ids in self._tokenizer(texts, add_special_tokens=False)["input_ids"]]
        if total is None:
            return [None] * len(texts)
        if not self._warned_apportioned:
            self._warned_apportioned = True
            log.warning("the server reports one token count for all n samples and no tokenizer for %r could "
                        "be loaded: completion_tokens are shared out by text length; pass --tokenizer for "
                        "exact counts", self._tokenizer_name)
        chars = sum(len(t) for t in texts) or 1
        return [round(total * len(t) / chars) for t in texts]


class _Failed(Exception):
    """This prompt failed for good; the rest of the run goes on."""


def _message(exc: Any) -> str:
    """The whole error message of a server's reply (cut only after scrubbing, see error_text)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", "")) or type(exc).__name__


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), 300.0) if value else None
    except ValueError:
        return None
