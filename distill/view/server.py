"""The local web server of `distill view`: a FastAPI app over a Workspace, served by uvicorn.

It answers five JSON routes and the package's own static files, nothing else: no route takes a path, so
it reads only the files the sources were built from. Every response carries a Content-Security-Policy
that runs only the package's scripts (model text that got into markup anyway could not run), and on
loopback a request must name a loopback host, so a web page elsewhere cannot read the traces through
DNS rebinding.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.errors import ConfigError
from distill.view.config import is_loopback
from distill.view.index import TEXT_PLACES, RecordQuery, StaleIndex
from distill.view.workspace import NotFound, Workspace

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _host_name(header: str) -> str:
    """The host of a Host header without its port: 'localhost:8000' → 'localhost', '[::1]:8000' → '::1'."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def create_app(workspace: Workspace, *, loopback_only: bool = True) -> Any:
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    app = FastAPI(title="distill view", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Any:
        host = _host_name(request.headers.get("host", ""))
        if loopback_only and host.lower() not in LOOPBACK_NAMES and not host.startswith("127."):
            response: Any = JSONResponse({"error": "this server answers only requests for a loopback host"},
                                         status_code=421)
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def answer(make: Callable[[], Any]) -> Any:
        try:
            return make()
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except StaleIndex as exc:
            raise HTTPException(409, str(exc)) from None

    @app.get("/", include_in_schema=False)
    def index_page() -> Any:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Any:
        return Response(status_code=204)

    @app.get("/api/sources")
    def sources() -> Any:
        return workspace.sources()

    @app.get("/api/overview")
    def overview(src: int = 0) -> Any:
        return answer(lambda: workspace.overview(src))

    @app.get("/api/records")
    def records(src: int = 0, status: str | None = None, rejected_by: str | None = None,
                verdict: list[str] = Query(default=[]), min_tokens: int | None = None,
                max_tokens: int | None = None, language: str | None = None, finish: str | None = None,
                prompt_id: str | None = None, model: str | None = None, judge: str | None = None,
                contamination: str | None = None, pass_rate: str | None = None, q: str | None = None,
                q_in: str = "all", sort: str = "file", page: int = 1, per_page: int = 50) -> Any:
        if q_in not in TEXT_PLACES:
            raise HTTPException(422, f"q_in must be one of {', '.join(TEXT_PLACES)}")
        verdicts = []
        for item in verdict:
            check, sep, value = item.partition(":")
            if not sep:
                raise HTTPException(422, "verdict must be check:value, e.g. correctness:false")
            verdicts.append((check, value))
        query = RecordQuery(status=status or None, rejected_by=rejected_by or None, verdicts=verdicts,
                            min_tokens=min_tokens, max_tokens=max_tokens, language=language or None,
                            finish=finish or None, prompt_id=prompt_id or None, model=model or None,
                            judge=judge or None, contamination=contamination or None, pass_rate=pass_rate or None,
                            text=q or None, text_in=q_in, sort=sort, page=page, per_page=per_page)
        return answer(lambda: workspace.records_page(src, query))

    @app.get("/api/record")
    def record(src: int, n: int) -> Any:
        return answer(lambda: workspace.record(src, n))

    @app.get("/api/prompt")
    def prompt(src: int, prompt_id: str) -> Any:
        return answer(lambda: workspace.prompt(src, prompt_id))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); ConfigError in one line when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot listen there ({exc.strerror}); give an address of this "
                          "machine, such as 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: the port is in use on {host}; choose another port, or leave --port "
                              "out to take a free one") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"--port {port}: not allowed to listen on it (ports below 1024 need root); choose a "
                              "port above 1023") from None
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(workspace: Workspace, sock: socket.socket) -> None:
    """Answer on `sock` until interrupted (Ctrl-C or SIGTERM): a stop, not an error."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            with super().capture_signals():
                yield
                self._captured_signals.clear()  # a Ctrl-C ends the viewer: nothing to re-raise

    host = sock.getsockname()[0]
    config = uvicorn.Config(create_app(workspace, loopback_only=is_loopback(host)), log_level="warning",
                            access_log=False, lifespan="off")
    Server(config).run(sockets=[sock])
