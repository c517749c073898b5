"""Loading prompts: local .jsonl/.json/.parquet/.csv files or Hub datasets
(`name[:config][@split]`), column mapping, the prompt template, stable ids and
deterministic sharding.

.jsonl files are read line by line by distill itself (exact line numbers in
errors, no type inference across rows, streaming); every other source goes
through `datasets.load_dataset`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, InputError
from distill.traces import is_trace_directory, iter_jsonl

log = logging.getLogger(__name__)

LOCAL_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass
class Prompt:
    prompt_id: str
    messages: list[dict[str, str]]
    reference: Any
    source: dict[str, Any]


def prompt_hash(text: str) -> str:
    """Stable id of a prompt without an id column: the first 16 hex digits of sha256(text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """'2/8' -> (2, 8); shards are numbered from 0 (as SLURM_ARRAY_TASK_ID is)."""
    if shard is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
    if not match:
        raise ConfigError(f"--shard must look like I/N, e.g. 0/4 (got {shard!r})")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {shard}: need 0 ≤ I < N (shards are numbered from 0)")
    return index, count


def shard_slice(total: int, shard: tuple[int, int] | None) -> slice:
    """Contiguous, balanced slices: shards 0..N-1 concatenated give the whole list in order."""
    if shard is None:
        return slice(0, total)
    index, count = shard
    return slice(index * total // count, (index + 1) * total // count)


def gsm8k_answer(value: Any) -> Any:
    """GSM8K stores the worked solution and then '#### 42'; the reference is what follows '####'."""
    if isinstance(value, str) and "####" in value:
        return value.rsplit("####", 1)[1].strip().replace(",", "")
    return value


def _is_hub_name(spec: str) -> bool:
    return Path(spec).suffix.lower() not in LOCAL_SUFFIXES and not spec.startswith((".", "/", "~"))


def iter_rows(spec: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 1, row) from a local file or a Hub dataset `name[:config][@split]`."""
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".jsonl" or is_trace_directory(path):  # a trace directory reads as one .jsonl
        yield from iter_jsonl(path)
        return
    if path.exists() or not _is_hub_name(spec):
        if not path.exists():
            raise InputError("file not found", path=spec)
        if path.is_file() and path.stat().st_size == 0:
            raise InputError("the file is empty; it needs one prompt per row", path=spec)
        builder = LOCAL_SUFFIXES.get(path.suffix.lower())
        if builder is None and not path.is_dir():
            raise InputError(f"unsupported file type {path.suffix!r}; use .jsonl, .json, .parquet or .csv",
                             path=spec)
        dataset = _load_dataset(spec, lambda ds: ds.load_dataset(builder, data_files=str(path), split="train")
                                if builder else ds.load_from_disk(str(path)))
    else:
        name, _, split = spec.partition("@")
        name, _, config = name.partition(":")
        dataset = _load_dataset(spec, lambda ds: ds.load_dataset(name, config or None, split=split or "train"))
    for number, row in enumerate(dataset, start=1):
        yield number, dict(row)


def _load_dataset(spec: str, load: Any) -> Any:
    import datasets

    datasets.utils.logging.disable_progress_bar()
    try:
        return load(datasets)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load prompts: {message}", path=spec) from None


def load_prompts(spec: str, *, prompt_column: str = "problem", answer_column: str = "answer",
                 id_column: str = "id", template: str = "{problem}", system: str | None = None,
                 limit: int | None = None, shard: str | None = None) -> list[Prompt]:
    """Read, check and render the prompts of a run (after --limit, then --shard)."""
    shard_spec = parse_shard(shard)
    prompts: list[Prompt] = []
    ids: dict[str, int] = {}
    duplicates = 0
    has_answer = False
    for number, row in iter_rows(spec):
        if limit is not None and number > limit:
            break
        if prompt_column not in row:
            columns = ", ".join(sorted(row)) or "none"
            raise InputError(f"no column '{prompt_column}' (columns here: {columns}); "
                             "pass --prompt-column NAME", path=spec, line=number)
        problem = row[prompt_column]
        if not isinstance(problem, str) or not problem.strip():
            raise InputError(f"must be non-empty text, got {str(problem)[:40]!r}", path=spec, line=number,
                             field=prompt_column)
        raw_id = row.get(id_column)
        if raw_id is not None and not isinstance(raw_id, (str, int)):
            raise InputError(f"must be a string or an integer, got {type(raw_id).__name__}",
                             path=spec, line=number, field=id_column)
        prompt_id = str(raw_id) if raw_id is not None else prompt_hash(problem)
        if prompt_id in ids:
            if raw_id is not None:
                raise InputError(f"duplicate id {prompt_id!r} (first on row {ids[prompt_id]}); ids must be unique",
                                 path=spec, line=number, field=id_column)
            duplicates += 1
            continue
        ids[prompt_id] = number
        has_answer = has_answer or answer_column in row
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": template.replace("{problem}", problem)})
        source = {k: v for k, v in row.items() if k not in (prompt_column, answer_column, id_column)}
        prompts.append(Prompt(prompt_id, messages, gsm8k_answer(row.get(answer_column)), source))
    if not prompts:
        raise InputError("no prompts: the input is empty", path=spec)
    if duplicates:
        log.warning("%s: skipped %d prompts whose text repeats an earlier one", spec, duplicates)
    if not has_answer:
        log.warning("%s: no '%s' column, so traces get reference null and the filter cannot check "
                    "correctness; pass --answer-column NAME if the answers are elsewhere", spec, answer_column)
    return prompts[shard_slice(len(prompts), shard_spec)]
