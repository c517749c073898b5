"""The judge: a generative model grades the answers no rule can (the DeepSeek-R1 recipe's judge).

It sees the problem, the reference (or, without one, a rubric) and the final
answer, never the reasoning, and must reply in a fixed format:

    VERDICT: CORRECT | INCORRECT
    REASON: <one sentence>

Threat model: the answer is written by the teacher (or, in `distill rl`, by the
policy being trained), so it is hostile text. It enters the prompt only fenced
between BEGIN/END lines that carry a tag derived from the hash of the problem,
reference and answer together (text cannot know the tag of a prompt it is part
of, so it cannot close its fence or open a section of its own), and any
BEGIN/END line inside it is defused. The verdict is read only from the judge's
own verdict line at the position the prompt asks for (the first line; the v1
prompts' last line), after every quoted piece of the answer is removed from
the reply; a reply with no verdict there, or with a second verdict that
disagrees, is unparsable: asked again, then None, never a guess. The reason
is the judge's own line, quoted text removed, cut to 200 characters.

A judge that fails (unreachable, HTTP errors, malformed replies) is not a judge
that could not decide: it is checked with one request when it starts, each
item is retried `--judge-retries` times with `--judge-timeout` per request, and
when more than `--judge-max-failures` of the items asked end without a reply
the run stops (JudgeFailed, exit 3) instead of keeping what needed a verdict.

Prompts are versioned files in distill/judge_prompts/ (or any file the user
names); their sha256 is part of every cache key, with the model, the server,
the reply budget, the attempts and the sampling, so any change judges again.
Each distinct item is judged once: each verdict is appended to a JSONL cache as
it arrives, so a killed run loses only the replies in flight.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from distill.backends.base import Backend, GenerationRequest, SamplingParams
from distill.chat import parse_template_kwargs
from distill.config import FREE, MUST_MATCH, Options, flag, one_of, require
from distill.errors import BackendError, ConfigError, InputError
from distill.traces import JsonlWriter, iter_jsonl, repair_torn_tail

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).with_name("judge_prompts")
DEFAULT_REFERENCE_PROMPT = "reference-v2"
DEFAULT_RUBRIC_PROMPT = "rubric-v2"
LAST_LINE_PROMPTS = ("reference-v1", "rubric-v1")
"""Shipped prompts that ask for REASON first and the verdict on the last line (a prompt file may say
so itself with a first line `#! verdict-line: last`); every other prompt asks for it on the first line."""
CACHE_VERSION = 2
"""Part of every cache key: bumped when rendering or parsing changes what a verdict means (2: fenced
fields, the verdict line at a fixed position)."""
MAX_FIELD_CHARS = 8000
"""Problem, reference and answer are cut to this many characters in the prompt (the judge needs the
final answer, not an essay; a huge answer must not become a huge request)."""

# bounded, anchored, no nested quantifiers: linear on any reply
_VERDICT = re.compile(r"VERDICT[*_ ]{0,4}[:：][\s*_`\"']{0,8}(CORRECT|INCORRECT)\b", re.IGNORECASE)
# the judge's own verdict line: nothing but the verdict (markdown emphasis allowed), so a sentence that
# merely mentions one is not one
_VERDICT_LINE = re.compile(r"[*_`#> ]{0,6}VERDICT[*_ ]{0,4}[:：][\s*_`\"']{0,8}(CORRECT|INCORRECT)[\s*_`\".]{0,8}",
                           re.IGNORECASE)
_REASON_LINE = re.compile(r"[*_`#> ]{0,6}REASON[*_ ]{0,4}[:：][\s*_`]{0,8}(.{0,400})", re.IGNORECASE)
_TAIL_CHARS = 4000
_FENCE_LINE = re.compile(r"^([ \t]*)(BEGIN|END)\b", re.IGNORECASE | re.MULTILINE)
_LABELS = {"problem": "PROBLEM", "reference": "REFERENCE", "answer": "ANSWER"}


def fence_tag(problem: str, reference: str | None, answer: str) -> str:
    """The tag of one rendered prompt's fences: a hash of all its fields, so a field's own text cannot
    know (or write) the line that would close its fence."""
    return hashlib.sha256(json.dumps([problem, reference, answer]).encode("utf-8")).hexdigest()[:16]


def fence(label: str, text: str, tag: str) -> str:
    """`text` between BEGIN/END lines carrying `tag`; a line of its own that starts with BEGIN or END is
    defused (a leading '\u2502 '), so even a guessed tag could not end the block early."""
    body = _FENCE_LINE.sub(lambda m: f"{m.group(1)}\u2502 {m.group(2)}", _cut(text))
    return f"BEGIN {label} {tag}\n{body}\nEND {label} {tag}"


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def verdict_line(self) -> str:
        """Where the prompt asks for the verdict: 'first' (v2 and later) or 'last' (v1's REASON, VERDICT)."""
        if self.text.startswith("#! verdict-line:"):
            return self.text.split("\n", 1)[0].partition(":")[2].strip()
        return "last" if self.name in LAST_LINE_PROMPTS else "first"

    def render(self, problem: str, reference: str | None, answer: str) -> str:
        tag = fence_tag(problem, reference, answer)
        values = {name: fence(_LABELS[name], value or "", tag)
                  for name, value in (("problem", problem), ("reference", reference), ("answer", answer))}
        text = self.text.split("\n", 1)[1] if self.text.startswith("#! verdict-line:") else self.text
        # str.format would choke on the braces of LaTeX in the values; the placeholders are replaced once
        # each, in one pass, so a value that holds '{answer}' is not expanded again
        return re.sub(r"\{(problem|reference|answer)\}", lambda m: values[m.group(1)], text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + " […cut]"


def load_prompt(spec: str, *, needs_reference: bool) -> JudgePrompt:
    """A shipped prompt by name ('reference-v1') or a text file; it must hold the placeholders it needs."""
    path = PROMPTS_DIR / f"{spec}.txt"
    if not path.is_file():
        path = Path(spec).expanduser()
    flag = "--judge-prompt" if needs_reference else "--judge-rubric-prompt"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.txt")))
        raise ConfigError(f"{flag} {spec}: no such prompt file or shipped prompt (shipped: {shipped})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the judge prompt ({exc})", path=str(path)) from None
    needed = ["{problem}", "{answer}", *(["{reference}"] if needs_reference else [])]
    missing = [name for name in needed if name not in text]
    if missing:
        raise InputError(f"a judge prompt needs the placeholders {', '.join(needed)}; missing "
                         f"{', '.join(missing)}", path=str(path))
    if text.startswith("#! verdict-line:") and text.split("\n", 1)[0].partition(":")[2].strip() not in (
            "first", "last"):
        raise InputError("'#! verdict-line:' must say first or last", path=str(path), line=1)
    return JudgePrompt(path.stem if path.parent == PROMPTS_DIR else str(path), text)


def _unquote(reply: str, quoted: Iterable[str]) -> str:
    """`reply` without the pieces of `quoted` it repeats (the whole text and each of its lines, of 6 or more
    characters): a judge that quotes the answer must not hand the answer's words to the parser."""
    pieces = set()
    for text in quoted:
        # shorter pieces cannot hold a verdict ('VERDICT:C' is 9), and removing them would eat the judge's words
        pieces.update(piece for piece in (text.strip(), *(line.strip() for line in text.splitlines()))
                      if len(piece) >= 6)
    for piece in sorted(pieces, key=len, reverse=True):
        reply = reply.replace(piece, " ")
    # an echoed prompt: its fenced blocks are the fields, whatever the judge did to them
    return re.sub(r"BEGIN (PROBLEM|REFERENCE|ANSWER) ([0-9a-f]{16})\n.*?\nEND \1 \2", " ", reply, flags=re.DOTALL)


def parse_verdict(reply: str, *, position: str = "first", quoted: Iterable[str] = ()) -> tuple[bool, str] | None:
    """(verdict, reason) from a judge's reply, else None (never a guess).

    A thinking judge's <think> part is skipped (an unclosed one: None). What the reply quotes of the
    graded texts (`quoted`: the answer, the problem, the reference) is removed first. The verdict is
    the judge's own verdict line at `position` ('first' or 'last' non-empty line); a reply with no
    verdict line there, or with any other verdict that disagrees with it, is unparsable.
    """
    if "<think>" in reply and "</think>" not in reply:
        return None
    text = reply.rpartition("</think>")[2] if "</think>" in reply else reply
    text = _unquote(text[-_TAIL_CHARS:] if position == "last" else text[:_TAIL_CHARS], quoted)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    own = _VERDICT_LINE.fullmatch(lines[0] if position == "first" else lines[-1])
    if own is None:
        return None
    verdict = own.group(1).upper()
    if any(match.group(1).upper() != verdict for match in _VERDICT.finditer(text)):
        return None
    reasons = [m.group(1) for line in lines if (m := _REASON_LINE.fullmatch(line))]
    reason = " ".join(reasons[0].split()) if reasons else ""
    return verdict == "CORRECT", reason[:200]


@dataclass(frozen=True)
class JudgeItem:
    problem: str
    reference: str | None
    """None: judged on the answer alone, with the rubric prompt."""
    answer: str


@dataclass
class JudgeVerdict:
    verdict: bool | None
    reason: str
    attempts: int
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "attempts": self.attempts, "tokens": self.tokens}


@dataclass
class JudgeStats:
    judged: int = 0
    """Distinct items sent to the judge model in this run."""
    cached: int = 0
    """Distinct items answered from the cache of an earlier run."""
    unparsed: int = 0
    """Items whose every reply failed to parse (verdict None: the judge could not decide)."""
    failed: int = 0
    """Items the backend could not get a reply for (verdict None: the judge failed)."""
    first_failure: str = ""
    """The first of those failures' errors, for the report and the error line."""
    requests: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "seconds"}, "seconds": round(self.seconds, 2)}


class JudgeFailed(BackendError):
    """The judge model failed on more items than --judge-max-failures allows (not: could not decide)."""

    exit_code = 3


HEALTH_ITEM = ("What is 1 + 1?", "2", "2")
"""The one request a judge answers before a run relies on it."""


@dataclass
class Judge:
    """Grades JudgeItems through any generation backend, with a cache on disk."""

    backend: Backend
    model: str
    reference_prompt: JudgePrompt
    rubric_prompt: JudgePrompt
    cache_path: Path | None = None
    max_attempts: int = 3
    max_tokens: int = 1024
    retry_temperature: float = 0.6
    seed: int = 0
    server: str = ""
    """Who answers (the backend and, for a served judge, its base URL): part of every cache key."""
    template_kwargs: str | None = None
    """The judge model's --judge-chat-template-kwargs (they change what it reads): part of every cache key."""
    max_failures: float = 1.0
    """Share of the items asked that may end without a reply before JudgeFailed stops the run."""
    stats: JudgeStats = field(default_factory=JudgeStats)
    _cache: dict[str, JudgeVerdict] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.cache_path is not None and Path(self.cache_path).exists():
            repair_torn_tail(self.cache_path)
            for _, row in iter_jsonl(self.cache_path):
                self._cache[row["key"]] = JudgeVerdict(row["verdict"], row.get("reason", ""),
                                                       row.get("attempts", 0), row.get("tokens", 0))

    def _prompt(self, item: JudgeItem) -> JudgePrompt:
        return self.reference_prompt if item.reference is not None else self.rubric_prompt

    def key(self, item: JudgeItem) -> str:
        """Everything that can change the verdict: the prompt (by content), how it is rendered and parsed,
        the model and who serves it, the reply budget, the attempts and their sampling, and the item."""
        payload = json.dumps([CACHE_VERSION, self._prompt(item).sha256, self.model, self.server, self.template_kwargs,
                              self.max_tokens,
                              self.max_attempts, self.retry_temperature, self.seed, item.problem, item.reference,
                              item.answer])
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _messages(self, item: JudgeItem) -> list[dict[str, str]]:
        return [{"role": "user", "content": self._prompt(item).render(item.problem, item.reference, item.answer)}]

    def parse(self, item: JudgeItem, reply: str) -> tuple[bool, str] | None:
        """The verdict of one reply about `item`, read where its prompt asks for it, quoted text removed."""
        return parse_verdict(reply, position=self._prompt(item).verdict_line,
                             quoted=(item.answer, item.problem, item.reference or ""))

    def health_check(self) -> None:
        """One request before the run relies on the judge: BackendError in one line when no reply comes."""
        item = JudgeItem(*HEALTH_ITEM)
        params = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_tokens=self.max_tokens, seed=self.seed)
        result = next(iter(self.backend.generate([GenerationRequest("health", self._messages(item))], params)))
        if result.error is not None or not result.samples:
            raise BackendError(f"the judge {self.model} ({self.server}) did not answer a test request: "
                               f"{result.error or 'an empty reply'}; start it or fix --judge / --judge-base-url, "
                               "then rerun")
        if self.parse(item, result.samples[0].text) is None:
            log.warning("the judge %s answered a test request without a verdict line where its prompt asks for "
                        "one (%r…); its unparsable replies will be asked again, then count as undecided",
                        self.model, result.samples[0].text[:80])

    def judge(self, items: Iterable[JudgeItem]) -> dict[str, JudgeVerdict]:
        """Verdicts by `key(item)` for every item; each distinct item is asked at most once per run and
        never again once a verdict (or a final None) is in the cache. JudgeFailed when the judge has
        failed on more than `max_failures` of the items asked so far."""
        todo: dict[str, JudgeItem] = {}
        out: dict[str, JudgeVerdict] = {}
        for item in items:
            key = self.key(item)
            if key in out or key in todo:
                continue
            if key in self._cache:
                out[key] = self._cache[key]
                self.stats.cached += 1
            else:
                todo[key] = item
        if todo:
            out.update(self._ask(todo))
        if self.stats.failed and self.stats.failed > self.max_failures * self.stats.judged:
            raise JudgeFailed(
                f"the judge {self.model} ({self.server}) failed on {self.stats.failed} of {self.stats.judged} items "
                f"asked (first: {self.stats.first_failure}), more than --judge-max-failures {self.max_failures:g} "
                "allows; nothing that needed its verdict was kept. Fix the judge server, then rerun the same "
                "command to resume")
        return out

    def _ask(self, todo: dict[str, JudgeItem]) -> dict[str, JudgeVerdict]:
        start = time.perf_counter()
        verdicts: dict[str, JudgeVerdict] = {}
        tokens: dict[str, int] = dict.fromkeys(todo, 0)
        open_keys = list(todo)
        writer = JsonlWriter(self.cache_path) if self.cache_path is not None else None
        try:
            for attempt in range(1, self.max_attempts + 1):
                if not open_keys:
                    break
                # greedy first; a reply that did not parse is asked again with sampling and another seed
                params = SamplingParams(n=1, temperature=0.0 if attempt == 1 else self.retry_temperature,
                                        top_p=1.0, max_tokens=self.max_tokens, seed=self.seed + attempt - 1)
                requests = [GenerationRequest(key, self._messages(todo[key]), index=i)
                            for i, key in enumerate(open_keys)]
                self.stats.requests += len(requests)
                still_open = []
                for result in self.backend.generate(requests, params):
                    key = result.key
                    if result.error is not None or not result.samples:
                        error = f"judge failed: {result.error or 'an empty reply'}"[:200]
                        verdicts[key] = JudgeVerdict(None, error, attempt)
                        self.stats.failed += 1
                        self.stats.first_failure = self.stats.first_failure or error
                        continue
                    sample = result.samples[0]
                    tokens[key] += sample.completion_tokens or 0
                    parsed = self.parse(todo[key], sample.text)
                    if parsed is None:
                        if attempt == self.max_attempts:
                            verdicts[key] = JudgeVerdict(None, f"no parsable verdict in {attempt} replies",
                                                         attempt, tokens[key])
                            self.stats.unparsed += 1
                            self._settle(key, verdicts[key], writer)
                        else:
                            still_open.append(key)
                        continue
                    verdicts[key] = JudgeVerdict(parsed[0], parsed[1], attempt, tokens[key])
                    self._settle(key, verdicts[key], writer)
                open_keys = still_open
        finally:
            if writer is not None:
                writer.close()
        self.stats.judged += len(todo)
        self.stats.tokens += sum(tokens.values())
        self.stats.seconds += time.perf_counter() - start
        return verdicts

    def _settle(self, key: str, verdict: JudgeVerdict, writer: JsonlWriter | None) -> None:
        """Cache a final verdict, on disk at once (a failed request is not one: a rerun asks again)."""
        self._cache[key] = verdict
        if writer is not None:
            writer.write([{"key": key, **verdict.to_dict()}])


def plain_number(reference: Any) -> bool:
    """A reference that is a plain number ('42', '-3.5', '1/2'): a rule's False on it is trusted."""
    return isinstance(reference, str) and re.fullmatch(r"\s*[-+]?\d+(?:\.\d+)?(?:\s*/\s*\d+)?\s*", reference) is not None


def needs_judge(correctness: bool | None, reference: Any, *, overrule_false: bool = True) -> bool:
    """Whether the judge should look at a record: the rules could not decide (None), or, with
    `overrule_false`, they said False on a reference that is not a plain number (rule false negatives)."""
    if isinstance(reference, dict):  # code: the sandbox's verdict is final
        return False
    if correctness is None:
        return True
    return correctness is False and overrule_false and not plain_number(reference)


JUDGE_BACKENDS = ("openai", "vllm", "hf")


@dataclass(kw_only=True)
class JudgeOptions(Options):
    """The judge model and how it is reached; a stage that grades with a judge inherits this group."""

    panel: ClassVar[str] = "Judge"
    judge: str | None = field(default=None, metadata=MUST_MATCH)
    """judge: the model that grades what the rules cannot (a served model name with --judge-backend openai, else a directory or Hub id); turns the judge check on."""
    judge_backend: str = field(default="openai", metadata=FREE)
    """judge: openai (any OpenAI-compatible server: vllm serve, a hosted API), vllm (offline engine) or hf."""
    judge_base_url: str | None = field(default=None, metadata=FREE)
    """judge: the server's base URL with --judge-backend openai, e.g. http://localhost:8000/v1."""
    judge_api_key_env: str | None = field(default=None, metadata=FREE)
    """judge: name of the environment variable holding the judge server's API key (never written anywhere)."""
    judge_concurrency: int = field(default=32, metadata=FREE)
    """judge: requests in flight at once (openai backend)."""
    judge_vllm_args: str | None = field(default=None, metadata=FREE)
    """judge: vllm.LLM arguments as a JSON object (vllm backend), e.g. '{"tensor_parallel_size": 4, "max_model_len": 8192}'."""
    judge_prompt: str = field(default=DEFAULT_REFERENCE_PROMPT, metadata=MUST_MATCH)
    """judge: the prompt for records with a reference (a shipped name such as reference-v1, or a file with {problem}, {reference}, {answer})."""
    judge_rubric_prompt: str = field(default=DEFAULT_RUBRIC_PROMPT, metadata=MUST_MATCH)
    """judge: the prompt for records without a reference (shipped rubric-v1, or a file with {problem}, {answer})."""
    judge_without_reference: bool = field(default=True, metadata=MUST_MATCH)
    """judge: also grade records that have no reference (writing, factual QA) with the rubric prompt."""
    judge_overrule_false: bool = field(default=True, metadata=MUST_MATCH)
    """judge: also judge answers the rules call wrong when the reference is not a plain number (rule false negatives)."""
    judge_unknown: str = field(default="keep", metadata=MUST_MATCH)
    """judge: what a record gets when the judge gives no verdict (no parsable reply, unreachable): keep or reject."""
    judge_attempts: int = field(default=3, metadata=MUST_MATCH)
    """judge: replies asked for before the verdict is null (greedy first, then sampled)."""
    judge_max_tokens: int = field(default=1024, metadata=MUST_MATCH)
    """judge: most tokens of one reply (a thinking judge needs more)."""
    judge_chat_template_kwargs: str | None = field(default=None, metadata=MUST_MATCH)
    """judge: extra chat-template variables of the judge model as a JSON object, e.g. '{"enable_thinking": false}'."""
    judge_cache: str | None = field(default=None, metadata=FREE)
    """judge: verdict cache (.jsonl), reused by reruns (default: <out>.judge-cache.jsonl beside --out)."""
    judge_timeout: float = field(default=300.0, metadata=FREE)
    """judge: seconds one request to a served judge may take before it is retried (openai backend)."""
    judge_retries: int = field(default=3, metadata=FREE)
    """judge: retries of a request that failed (connection, HTTP 5xx, malformed reply), with backoff (openai backend)."""
    judge_max_failures: float = field(default=0.01, metadata=FREE)
    """judge: share of the items asked that may end without a reply (a failed judge, not an undecided one) before the run stops with exit 3."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.judge_backend, "judge_backend", JUDGE_BACKENDS)
        one_of(self.judge_unknown, "judge_unknown", ("keep", "reject"))
        require(self.judge_attempts >= 1, "judge_attempts", f"must be at least 1 (got {self.judge_attempts})")
        require(self.judge_max_tokens >= 1, "judge_max_tokens", f"must be at least 1 (got {self.judge_max_tokens})")
        require(self.judge_concurrency >= 1, "judge_concurrency", "must be at least 1")
        require(math.isfinite(self.judge_timeout) and self.judge_timeout > 0, "judge_timeout",
                f"must be a positive number of seconds (got {self.judge_timeout})")
        require(self.judge_retries >= 0, "judge_retries", f"must be ≥ 0 (got {self.judge_retries})")
        require(0 <= self.judge_max_failures <= 1, "judge_max_failures",
                f"must be a share in [0, 1] (got {self.judge_max_failures})")
        parse_template_kwargs(self.judge_chat_template_kwargs, "--judge-chat-template-kwargs")
        if self.judge is None:
            return
        require(self.judge_backend != "openai" or bool(self.judge_base_url), "judge_base_url",
                "is required with --judge-backend openai (e.g. http://localhost:8000/v1)")
        for name, backend in (("judge_base_url", "openai"), ("judge_api_key_env", "openai"),
                              ("judge_vllm_args", "vllm")):
            require(getattr(self, name) is None or self.judge_backend == backend, name,
                    f"only applies to --judge-backend {backend}; add --judge-backend {backend} or drop {flag(name)}")
        engine_args = self._vllm_args()
        require("model" not in engine_args, "judge_vllm_args", "sets 'model': name the judge with --judge")
        require("seed" not in engine_args, "judge_vllm_args", "sets 'seed': distill seeds every judge request itself")
        load_prompt(self.judge_prompt, needs_reference=True)
        load_prompt(self.judge_rubric_prompt, needs_reference=False)

    def _vllm_args(self) -> dict[str, Any]:
        try:
            engine_args = json.loads(self.judge_vllm_args) if self.judge_vllm_args else {}
        except json.JSONDecodeError:
            engine_args = None
        require(isinstance(engine_args, dict), "judge_vllm_args", "must be a JSON object")
        return engine_args

    def make_judge(self, cache_path: Path | None, *, seed: int = 0) -> Judge:
        """The Judge these options describe (its engine started: a server checked, weights loaded)."""
        from distill.backends import BACKENDS
        from distill.backends.vllm_engine import VLLMOptions

        engine, options_class = BACKENDS[self.judge_backend]
        kwargs: dict[str, Any] = {}
        if self.judge_backend == "openai":
            values: dict[str, Any] = {"base_url": self.judge_base_url, "api_key_env": self.judge_api_key_env,
                                      "concurrency": self.judge_concurrency, "tokenizer": "none",
                                      "request_timeout": self.judge_timeout, "max_retries": self.judge_retries}
        elif self.judge_backend == "vllm":
            # the filter has no engine flags of its own: the ones generate has (--max-model-len, --dtype, …)
            # come in --judge-vllm-args, with the engine's other arguments
            engine_args = self._vllm_args()
            own = {f.name for f in dataclasses.fields(VLLMOptions)} & set(engine_args) - {"vllm_args"}
            values = {name: engine_args.pop(name) for name in own}
            values["vllm_args"] = json.dumps(engine_args) if engine_args else None
            kwargs["flags"] = {"model": "--judge", "backend": "--judge-backend", "vllm_args": "--judge-vllm-args",
                               "max_tokens": "--judge-max-tokens",
                               **{name: f"{name} in --judge-vllm-args" for name in
                                  ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype")}}
        else:
            values = {}
        values["chat_template_kwargs"] = self.judge_chat_template_kwargs
        backend = engine(self.judge or "", options_class(**values), seed=seed, **kwargs)
        server = f"openai at {self.judge_base_url}" if self.judge_backend == "openai" else self.judge_backend
        judge = Judge(backend, self.judge or "", load_prompt(self.judge_prompt, needs_reference=True),
                      load_prompt(self.judge_rubric_prompt, needs_reference=False), cache_path=cache_path,
                      max_attempts=self.judge_attempts, max_tokens=self.judge_max_tokens, seed=seed, server=server,
                      max_failures=self.judge_max_failures, template_kwargs=self.judge_chat_template_kwargs)
        try:  # a --judge-max-tokens the engine's context cannot hold: one line now, not a failed request per item
            backend.check(SamplingParams(n=1, temperature=0.0, top_p=1.0, max_tokens=self.judge_max_tokens, seed=seed))
            judge.health_check()  # a judge that is down stops the run here, before anything is written
        except BaseException:
            backend.close()
            raise
        return judge


class JudgePool:
    """The judge check's slow part, in the filter's main process: the pool interface of a pooled check
    (batch() → add(problem, reference, answer, index), submit(), results(); close(); stats)."""

    def __init__(self, judge: Judge):
        self.judge = judge
        self.stats = judge.stats

    def batch(self) -> _JudgeBatch:
        return _JudgeBatch(self.judge)

    def close(self) -> None:
        self.judge.backend.close()


@dataclass
class _JudgeBatch:
    judge: Judge
    items: list[tuple[JudgeItem, int]] = field(default_factory=list)

    def add(self, problem: str, reference: str | None, answer: str, index: int) -> None:
        self.items.append((JudgeItem(problem, reference, answer), index))

    def submit(self) -> None:
        """Nothing to start ahead: a chunk's items are judged together when its results are asked for."""

    def results(self) -> Iterable[tuple[list[int], JudgeVerdict]]:
        verdicts = self.judge.judge(item for item, _ in self.items)
        for item, index in self.items:
            yield [index], verdicts[self.judge.key(item)]
