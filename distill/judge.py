"""The judge: a generative model grades the answers no rule can (the DeepSeek-R1 recipe's judge).

It sees the problem, the reference (or, without one, a rubric) and the final
answer, never the reasoning, and must reply in a fixed format:

    REASON: <one sentence>
    VERDICT: CORRECT | INCORRECT

A reply that does not parse is asked again (greedy first, then sampled with
other seeds); after the last attempt the verdict is None, never a guess.
Prompts are versioned files in distill/judge_prompts/ (or any file the user
names); their sha256 is part of every cache key, so a changed prompt judges
again. Each distinct (prompt, model, problem, reference, answer) is judged once:
verdicts are appended to a JSONL cache as they arrive, so a killed run loses
only the replies in flight, and a rerun reuses the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from distill.backends.base import Backend, GenerationRequest, SamplingParams
from distill.config import FREE, MUST_MATCH, Options, flag, one_of, require
from distill.errors import ConfigError, InputError
from distill.traces import JsonlWriter, iter_jsonl, repair_torn_tail

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).with_name("judge_prompts")
DEFAULT_REFERENCE_PROMPT = "reference-v1"
DEFAULT_RUBRIC_PROMPT = "rubric-v1"
MAX_FIELD_CHARS = 8000
"""Problem, reference and answer are cut to this many characters in the prompt (the judge needs the
final answer, not an essay; a huge answer must not become a huge request)."""

# bounded, anchored, no nested quantifiers: linear on any reply
_VERDICT = re.compile(r"VERDICT[*_ ]{0,4}[:：][\s*_`\"']{0,8}(CORRECT|INCORRECT)\b", re.IGNORECASE)
_REASON = re.compile(r"REASON[*_ ]{0,4}[:：][\s*_`]{0,8}([^\n]{0,400})", re.IGNORECASE)
_TAIL_CHARS = 4000


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def render(self, problem: str, reference: str | None, answer: str) -> str:
        values = {"problem": _cut(problem), "reference": _cut(reference or ""), "answer": _cut(answer)}
        # str.format would choke on the braces of LaTeX in the values; the placeholders are replaced once each
        return re.sub(r"\{(problem|reference|answer)\}", lambda m: values[m.group(1)], self.text)


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
    return JudgePrompt(path.stem if path.parent == PROMPTS_DIR else str(path), text)


def parse_verdict(reply: str) -> tuple[bool, str] | None:
    """(verdict, reason) from a judge's reply, else None. A thinking judge's <think> part is skipped;
    the last VERDICT line counts; a reply that names both verdicts on its last VERDICT line is unparsable."""
    text = reply.rpartition("</think>")[2] if "</think>" in reply else reply
    text = text[-_TAIL_CHARS:]
    matches = list(_VERDICT.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    line_end = text.find("\n", last.end())
    rest = text[last.end(): line_end if line_end >= 0 else len(text)]
    if re.search(r"\b(IN)?CORRECT\b", rest, re.IGNORECASE):
        return None
    reasons = _REASON.findall(text)
    reason = " ".join(reasons[-1].split()) if reasons else ""
    return last.group(1).upper() == "CORRECT", reason[:200]


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
    """Items whose every reply failed to parse (verdict None)."""
    failed: int = 0
    """Items the backend could not get a reply for (verdict None)."""
    requests: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "seconds"}, "seconds": round(self.seconds, 2)}


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
    stats: JudgeStats = field(default_factory=JudgeStats)
    _cache: dict[str, JudgeVerdict] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.cache_path is not None and Path(self.cache_path).exists():
            repair_torn_tail(self.cache_path)
            for _, row in iter_jsonl(self.cache_path):
                self._cache[row["key"]] = JudgeVerdict(row["verdict"], row.get("reason", ""),
                                                       row.get("attempts", 0), row.get("tokens", 0))

    def key(self, item: JudgeItem) -> str:
        prompt = self.reference_prompt if item.reference is not None else self.rubric_prompt
        payload = json.dumps([prompt.sha256, self.model, item.problem, item.reference, item.answer])
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _messages(self, item: JudgeItem) -> list[dict[str, str]]:
        prompt = self.reference_prompt if item.reference is not None else self.rubric_prompt
        return [{"role": "user", "content": prompt.render(item.problem, item.reference, item.answer)}]

    def judge(self, items: Iterable[JudgeItem]) -> dict[str, JudgeVerdict]:
        """Verdicts by `key(item)` for every item; each distinct item is asked at most once per run and
        never again once a verdict (or a final None) is in the cache."""
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
                finished: list[dict[str, Any]] = []
                for result in self.backend.generate(requests, params):
                    key = result.key
                    if result.error is not None or not result.samples:
                        verdicts[key] = JudgeVerdict(None, f"judge failed: {result.error}"[:200], attempt)
                        self.stats.failed += 1
                        continue
                    sample = result.samples[0]
                    tokens[key] += sample.completion_tokens or 0
                    parsed = parse_verdict(sample.text)
                    if parsed is None:
                        if attempt == self.max_attempts:
                            verdicts[key] = JudgeVerdict(None, f"no parsable verdict in {attempt} replies",
                                                         attempt, tokens[key])
                            self.stats.unparsed += 1
                            finished.append(self._settle(key, verdicts[key]))
                        else:
                            still_open.append(key)
                        continue
                    verdicts[key] = JudgeVerdict(parsed[0], parsed[1], attempt, tokens[key])
                    finished.append(self._settle(key, verdicts[key]))
                    if writer is not None and len(finished) >= 64:
                        writer.write(finished)
                        finished = []
                if writer is not None and finished:
                    writer.write(finished)
                open_keys = still_open
        finally:
            if writer is not None:
                writer.close()
        self.stats.judged += len(todo)
        self.stats.tokens += sum(tokens.values())
        self.stats.seconds += time.perf_counter() - start
        return verdicts

    def _settle(self, key: str, verdict: JudgeVerdict) -> dict[str, Any]:
        """Cache a final verdict (a failed request is not one: a rerun asks again); its row for the cache file."""
        self._cache[key] = verdict
        return {"key": key, **verdict.to_dict()}


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
    judge_cache: str | None = field(default=None, metadata=FREE)
    """judge: verdict cache (.jsonl), reused by reruns (default: <out>.judge-cache.jsonl beside --out)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.judge_backend, "judge_backend", JUDGE_BACKENDS)
        one_of(self.judge_unknown, "judge_unknown", ("keep", "reject"))
        require(self.judge_attempts >= 1, "judge_attempts", f"must be at least 1 (got {self.judge_attempts})")
        require(self.judge_max_tokens >= 1, "judge_max_tokens", f"must be at least 1 (got {self.judge_max_tokens})")
        require(self.judge_concurrency >= 1, "judge_concurrency", "must be at least 1")
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
                                      "concurrency": self.judge_concurrency, "tokenizer": "none"}
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
        backend = engine(self.judge or "", options_class(**values), seed=seed, **kwargs)
        try:  # a --judge-max-tokens the engine's context cannot hold: one line now, not a failed request per item
            backend.check(SamplingParams(n=1, temperature=0.0, top_p=1.0, max_tokens=self.judge_max_tokens, seed=seed))
        except BaseException:
            backend.close()
            raise
        return Judge(backend, self.judge or "", load_prompt(self.judge_prompt, needs_reference=True),
                     load_prompt(self.judge_rubric_prompt, needs_reference=False), cache_path=cache_path,
                     max_attempts=self.judge_attempts, max_tokens=self.judge_max_tokens, seed=seed)


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
