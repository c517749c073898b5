"""Shards: one run split into N parts that run apart (`--shard I/N`: Slurm array tasks, the demo's worker
processes), each into its own file, then joined into the one output the whole run would have written;
and the trace directory (`distill generate --ray`): shard files listed in order by a manifest.json,
which every stage reads as one trace file (`distill.traces.iter_jsonl`).

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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from distill.errors import ConfigError, InputError, OutputError
from distill.traces import (  # noqa: F401 - the reading side of a trace directory (re-exported: the writers use it)
    SHARD_FORMAT,
    SHARD_MANIFEST,
    JsonlWriter,
    is_shard_directory,
    read_shard_manifest,
    shard_files,
    write_json,
)


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


# ---------------------------------------------------------------- a directory of shards

SHARD_RECORDS = 100_000
"""Records per shard before a writer starts the next one (a 32k-token trace is ~130 kB: ~13 GB a shard at most)."""


def write_shard_manifest(directory: str | Path, shards: Sequence[dict[str, Any]]) -> None:
    """Write the manifest atomically (temp file, fsync, rename): a reader sees the old list or the new one."""
    data = {"format": SHARD_FORMAT, "version": 1, "records": sum(s["records"] for s in shards),
            "shards": [dict(s) for s in shards]}
    write_json(Path(directory) / SHARD_MANIFEST, data, fsync=True)


class ShardWriter:
    """Appends records to a trace directory: shard files `part-00000.jsonl`, … listed in manifest.json.

    Each writer (one per run, so a resumed run too) starts a shard of its own at its first write and the
    next one every `records_per_shard` records. A shard is created, then listed, then written: every
    listed shard exists, and only the last one a killed run wrote can end in a torn line (the resume
    repairs it as for a single file). The counts in the manifest are brought up to date every
    `save_every` seconds and at close; a reader reads the listed files whole.
    """

    def __init__(self, directory: str | Path, *, records_per_shard: int = SHARD_RECORDS, save_every: float = 10.0):
        self.directory = Path(directory)
        self.records_per_shard, self.save_every = records_per_shard, save_every
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest = self.directory / SHARD_MANIFEST
        self.shards: list[dict[str, Any]] = read_shard_manifest(self.directory)["shards"] if manifest.exists() else []
        if not manifest.exists():
            write_shard_manifest(self.directory, self.shards)
        self._writer: Any = None
        self._saved = time.monotonic()

    def _next_shard(self) -> None:

        self._close_shard()
        name = f"part-{len(self.shards):05d}.jsonl"
        path = self.directory / name
        path.unlink(missing_ok=True)  # an unlisted file a run killed between creating and listing it left
        self._writer = JsonlWriter(path)
        self.shards.append({"file": name, "records": 0})
        self._save()

    def write(self, records: Sequence[dict[str, Any]]) -> int:
        """Append `records` (a prompt's samples: one write, never split over two shards)."""
        if not records:
            return 0
        if self._writer is None or self.shards[-1]["records"] >= self.records_per_shard:
            self._next_shard()
        written = self._writer.write(records)
        self.shards[-1]["records"] += written
        if time.monotonic() - self._saved >= self.save_every:
            self._save()
        return written

    def _save(self) -> None:
        write_shard_manifest(self.directory, self.shards)
        self._saved = time.monotonic()

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        self._close_shard()
        self._save()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
