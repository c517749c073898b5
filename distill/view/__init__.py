"""`distill view`: look at traces, rejects and eval results in the browser.

    from distill.view import ViewConfig, view
    view(ViewConfig(paths=["kept.jsonl"]), ready=print)          # serves http://127.0.0.1:PORT/ until Ctrl-C
    view(ViewConfig(paths=["run/"], export="report.html"))       # one self-contained HTML file instead

Each PATH becomes sources (distill.view.sources: a trace file, a filter output, an eval result, a directory
of shards, everything in a run directory); each source gets an index of record offsets and small fields
(distill.view.index, cached by content hash), from which the page's questions are answered
(distill.view.workspace) by a local FastAPI server (distill.view.server) or baked into one HTML file
(distill.view.export). The page itself is static/app.js, vanilla JS with KaTeX and highlight.js vendored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from distill.errors import ConfigError
from distill.view.config import ViewConfig, is_loopback

log = logging.getLogger(__name__)


@dataclass
class ViewResult:
    """What a `view` did: the sources it showed, and where (the URL it served, or the file it wrote)."""

    sources: list[str]
    records: int
    url: str | None = None
    export: str | None = None
    exported_records: int = 0
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        what = f"{self.records:,} records from {len(self.sources)} source{'s' * (len(self.sources) != 1)}"
        if self.export:
            return f"wrote {self.export}: the overview of {what}, with {self.exported_records:,} of the records"
        return f"distill view stopped (served {what} at {self.url})"


def _require_server() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"distill view needs FastAPI and uvicorn ({exc.name} is not installed): "
                          "pip install 'distill[view]', or write a file with --export report.html") from None


def view(cfg: ViewConfig, *, ready: Callable[[str], None] | None = None) -> ViewResult:
    """Index cfg.paths, then serve them on cfg.host:cfg.port until interrupted (calling `ready` with the URL
    once the page can be opened), or with cfg.export write one HTML file and return."""
    from distill.view.workspace import Workspace

    sock = None
    if cfg.export is None:
        _require_server()
        from distill.view.server import bind

        sock = bind(cfg.host, cfg.port)  # before indexing: a port in use fails at once, not after the index
    try:
        workspace = Workspace.open(cfg.paths, cfg.cache_path)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    names = [index.source.name for index in workspace.indexes]
    try:
        if cfg.export is not None:
            from distill.view.export import export_html

            written = export_html(workspace, cfg.export, per_kind=cfg.export_records)
            return ViewResult(names, workspace.records, export=cfg.export, exported_records=written)
        from distill.view.server import serve, url_of

        assert sock is not None
        url = url_of(sock)
        if not is_loopback(cfg.host):
            log.warning("listening on %s (--host %s): every machine that can reach this one can read these traces "
                        "and their prompts; use the default 127.0.0.1 unless that is what you want", url, cfg.host)
        (ready or (lambda address: log.info("distill view: open %s", address)))(url)
        if cfg.browser:
            import webbrowser

            webbrowser.open(url)
        serve(workspace, sock)
        return ViewResult(names, workspace.records, url=url)
    finally:
        workspace.close()
        if sock is not None:
            sock.close()


__all__ = ["ViewConfig", "ViewResult", "view"]
