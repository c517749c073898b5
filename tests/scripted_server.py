"""A chat-completions server on 127.0.0.1 that answers from a script, not a model.

It is what its name says: a stand-in for a judge whose replies the test must
control (right, wrong, unparsable, slow), since a tiny random model cannot
judge. It speaks the OpenAI wire format, so the real `openai` backend talks to it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedChatServer:
    """`reply(prompt_text, call_number)` -> the assistant's text, or a list of texts (one choice each, with
    one usage for all, as servers that do `n` report it), or None for an HTTP 500, or bytes: a 200 whose
    body is those bytes as they are (a malformed reply), or a dict: a 200 whose JSON body is that dict."""

    def __init__(self, reply: Callable[[str, int], str | None], *, delay_s: float = 0.0):
        self.reply = reply
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.bodies: list[dict] = []
        """Each request's JSON body, as sent."""
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                prompt = "\n".join(m.get("content") or "" for m in body.get("messages", []))
                with server.lock:
                    server.calls.append(prompt)
                    server.bodies.append(body)
                    number = sum(1 for c in server.calls if c == prompt)
                if server.delay_s:
                    time.sleep(server.delay_s)
                text = server.reply(prompt, number)
                if isinstance(text, bytes):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                    return
                if isinstance(text, dict):
                    payload, status = text, 200
                elif text is None:
                    payload, status = {"error": {"message": "scripted failure"}}, 500
                else:
                    texts = text if isinstance(text, list) else [text]
                    words = sum(len(t.split()) for t in texts)
                    payload, status = {
                        "id": f"chat-{len(server.calls)}", "object": "chat.completion", "created": 0,
                        "model": body.get("model", "judge"),
                        "choices": [{"index": i, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)],
                        "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": words,
                                  "total_tokens": len(prompt.split()) + words}}, 200
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def graded(self) -> list[str]:
        """The calls that graded an item: all but a judge's start-up health check (distill.judge.HEALTH_ITEM)."""
        from distill.judge import HEALTH_ITEM

        return [call for call in self.calls if field_of(call, "PROBLEM") != HEALTH_ITEM[0]]

    def __enter__(self) -> ScriptedChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def field_of(prompt: str, label: str) -> str | None:
    """A fenced field of a rendered judge prompt ('ANSWER', 'REFERENCE', 'PROBLEM'), None when absent."""
    match = re.search(rf"BEGIN {label} ([0-9a-f]{{16}})\n(.*?)\nEND {label} \1", prompt, re.DOTALL)
    return match.group(2) if match else None
