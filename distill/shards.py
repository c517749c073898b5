"""Shards: one run split into N parts that run apart (`--shard I/N`: Slurm array tasks, the demo's worker
processes), each into its own file, then joined into the one output the whole run would have written.

    configs = shard_configs(cfg, 4)              # cfg with shard='0/4' … '3/4', out=traces.shard-0-of-4.jsonl …
    ...                                          # run each (generate(config)), anywhere
    concatenate([c.out for c in configs], cfg.out)   # shard 0's lines, then shard 1's, …, all or nothing

A shard is a contiguous slice of the prompts (`distill.prompts.parse_shard`, `shard_slice`), numbered
from 0, so the shards joined in order are the whole run's records in the whole run's order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from distill.errors import ConfigError, InputError, OutputError


class ShardableConfig(Protocol):
    """A stage config that can run one shard: a dataclass with `out` and `shard` (`GenerateConfig`)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    out: str
    shard: str | None


Config = TypeVar("Config", bound=ShardableConfig)


def _check_count(count: int) -> None:
    if count < 1:
        raise ConfigError(f"a run splits into at least 1 shard (got {count})")


def shard_specs(count: int) -> list[str]:
    """The `--shard` value of each of `count` shards: 3 -> ['0/3', '1/3', '2/3']."""
    _check_count(count)
    return [f"{index}/{count}" for index in range(count)]


def shard_output(out: str | Path, index: int, count: int) -> Path:
    """Where shard `index` of `count` writes, beside the whole run's output and named after it:
    ('traces.jsonl', 1, 4) -> 'traces.shard-1-of-4.jsonl'. The count is in the name, so that the
    shards of a run split another way are other files (a rerun never resumes them by mistake)."""
    _check_count(count)
    if not 0 <= index < count:
        raise ConfigError(f"shard {index} of {count}: need 0 ≤ I < N (shards are numbered from 0)")
    out = Path(out)
    return out.with_name(f"{out.stem}.shard-{index}-of-{count}{out.suffix}")


def shard_outputs(out: str | Path, count: int) -> list[Path]:
    """`shard_output` of every shard, in order."""
    _check_count(count)
    return [shard_output(out, index, count) for index in range(count)]


def shard_configs(cfg: Config, count: int) -> list[Config]:
    """A copy of a stage's config for each shard: `shard` set to its `--shard I/N` and `out` to its
    `shard_output`, every other option the same. `cfg` must be the whole run's (its `shard` None):
    `--shard` slices the whole run's prompts, so a shard is not split again."""
    if cfg.shard is not None:
        raise ConfigError(f"--shard {cfg.shard} is already one shard of a run; split the whole run "
                          "(without --shard) instead")
    return [dataclasses.replace(cfg, out=str(path), shard=spec)
            for path, spec in zip(shard_outputs(cfg.out, count), shard_specs(count), strict=True)]


def concatenate(shard_paths: Sequence[str | Path], out: str | Path) -> Path:
    """Join JSON-lines shards into `out`, in the order given (shard 0 first), byte for byte.

    All or nothing: the shards are written to `out` + '.tmp', which then replaces `out` in one
    rename, so a crash (or a full disk) mid-join leaves `out` as it was, never half joined. Every
    shard must exist and end with a whole line: a missing shard or a torn last line (a shard killed
    mid-write and not resumed) is refused before anything is written, since joined it would lose
    records or fuse two lines into one."""
    paths = [Path(path) for path in shard_paths]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise InputError(f"missing shard file(s): {', '.join(missing)}; run those shards (--shard I/N) "
                         "to the end, then join again")
    for path in paths:
        if not _ends_with_whole_line(path):
            raise InputError("its last line is cut off (the shard stopped mid-write); rerun the shard with the "
                             "same options to repair and finish it, then join again", path=str(path))
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with tmp.open("wb") as joined:
            for path in paths:
                with path.open("rb") as shard:
                    shutil.copyfileobj(shard, joined)
            joined.flush()
            os.fsync(joined.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror}; free some space or choose another location, "
                          "then join again") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # what a failed join left; after the rename there is nothing
    return out


def _ends_with_whole_line(path: Path) -> bool:
    """An empty file, or one whose last byte is a newline."""
    with path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
