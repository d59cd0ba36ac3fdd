"""A teacher endpoint on 127.0.0.1 for tests: a real HTTP server on a thread that answers from
a script (OpenAI-shaped answers, 429s, 500s, or silence), and records what it was sent."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"  # accept, read the request, never answer


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def chat(content: str, tool_calls: list[dict[str, Any]] | None = None) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return Reply(body={"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})


def completion(text: str) -> Reply:
    return Reply(body={"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})


@dataclass
class Seen:
    path: str
    body: dict[str, Any]
    authorization: str | None
    at: float


Script = Callable[[Seen], Reply | str]


class TeacherServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                seen = Seen(self.path, body, self.headers.get("authorization"), time.monotonic())
                server.seen.append(seen)
                reply = server.script(seen)
                if reply == HANG:
                    server._release.wait(30)
                    return
                assert isinstance(reply, Reply)
                data = json.dumps(reply.body).encode() if reply.body is not None else b"{}"
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def close(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def teacher_server(script: Script) -> Iterator[TeacherServer]:
    server = TeacherServer(script)
    server._thread.start()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def silent_socket() -> Iterator[str]:
    """A base_url whose socket accepts connections and never answers a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        sock.close()
