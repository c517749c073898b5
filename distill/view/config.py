"""`ViewConfig`: the options of `distill view` (API, CLI flags and YAML recipe keys at once).

Nothing here changes an output, so every field is FREE for the resume contract (distill.runs)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from distill.config import FREE, Options, require

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the server to this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/distill/view, else ~/.cache/distill/view."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "distill" / "view"


@dataclass(kw_only=True)
class ViewConfig(Options):
    paths: list[str] = field(metadata=FREE)
    """What to look at: trace files, filter outputs (kept.jsonl: kept + rejects + report), eval results (results.json), run directories, or a directory of trace shards (read in name order as one file)."""
    host: str = field(default=LOOPBACK, metadata=FREE)
    """Address to listen on. Anything but loopback (127.0.0.1, ::1, localhost) lets every machine that reaches this one read the traces (a warning says so)."""
    port: int = field(default=0, metadata=FREE)
    """Port to listen on; 0 takes a free one. The URL is printed either way."""
    browser: bool = field(default=False, metadata=FREE)
    """Open the URL in the default web browser."""
    cache_dir: str | None = field(default=None, metadata=FREE)
    """Where the record indexes are kept, named by the content hash of the files (default: $XDG_CACHE_HOME/distill/view or ~/.cache/distill/view)."""
    export: str | None = field(default=None, metadata=FREE)
    """Write one self-contained HTML file (overview, and records per reject reason) here instead of serving; no network needed to open it."""
    export_records: int = field(default=5, metadata=FREE)
    """--export: records per reject reason, kept records, and per model of an eval, in the file."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.paths), "paths", "needs at least one PATH (a trace file, filter output, eval result or "
                                           "run directory)")
        require(0 <= self.port <= 65535, "port", f"must be between 0 and 65535 (got {self.port})")
        require(bool(self.host.strip()), "host", "must not be empty")
        require(self.export is None or self.export.endswith((".html", ".htm")), "export",
                f"must be an .html file such as report.html (got {self.export!r})")
        require(self.export_records >= 1, "export_records", f"must be at least 1 (got {self.export_records})")

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
