"""A local server that speaks the OpenAI chat-completions wire protocol, for the tests.

`StubServer` listens on 127.0.0.1 (a free port) in a thread and answers
`POST /v1/chat/completions`, with and without `"stream": true` (SSE chunks, then a usage chunk
when `stream_options.include_usage` asks for one, then `data: [DONE]`). What it answers is
scripted per test: `script` is a list of `Answer`s used one per request (the last one repeats).
Every request it received is kept in `requests` (body and headers), so a test can say that a
refused call never reached it, or what text reached it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    """`kind`: ok (answer `text`), status (HTTP `status` with an error body), slow (ok after
    `delay_s`), malformed (200 with a body that is not a completion), echo_key (401 whose
    message repeats the Authorization header, as some servers do)."""

    kind: str = "ok"
    text: str = "Hello from the stub."
    status: int = 200
    delay_s: float = 0.0
    usage: bool = True  # report token usage


OK = Answer()


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def prompt_text(self) -> str:
        return "\n".join(str(m.get("content")) for m in self.body.get("messages", []))


@dataclass
class StubServer:
    script: list[Answer] = field(default_factory=lambda: [OK])
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # slow answers stop waiting
        self._server.shutdown()
        self._server.server_close()

    def next_answer(self, received: Received) -> Answer:
        with self._lock:
            self.requests.append(received)
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def wait(self, seconds: float) -> None:
        self._release.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout tests) closed its end: nothing to report


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: with Nagle's algorithm the body waited
        # for the client's delayed ACK, 40 ms a call, which no real provider adds.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            received = Received(body, {k.lower(): v for k, v in self.headers.items()})
            answer = stub.next_answer(received)
            if answer.kind == "status":
                self._json(answer.status, {"error": {"message": f"stub says {answer.status}",
                                                     "type": "server_error"}})
                return
            if answer.kind == "echo_key":
                said = received.headers.get("authorization", "")
                self._json(401, {"error": {"message": f"Incorrect API key provided: {said}"}})
                return
            if answer.kind == "malformed":
                self._raw(200, b'{"choices": "not a list", "usage": 7}', "application/json")
                return
            if answer.kind == "slow":
                stub.wait(answer.delay_s)
            if body.get("stream"):
                self._stream(body, answer)
            else:
                self._json(200, _completion(body, answer))

        def _json(self, status: int, document: dict[str, Any]) -> None:
            self._raw(status, json.dumps(document).encode(), "application/json")

        def _raw(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, body: dict[str, Any], answer: Answer) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in _chunks(body, answer):
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


def _usage(body: dict[str, Any], answer: Answer) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    completion = len(answer.text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _completion(body: dict[str, Any], answer: Answer) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "chatcmpl-stub", "object": "chat.completion", "created": 0,
        "model": body.get("model", "stub"),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": answer.text}}],
    }
    if answer.usage:
        document["usage"] = _usage(body, answer)
    return document


def _chunks(body: dict[str, Any], answer: Answer) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0,
            "model": body.get("model", "stub")}
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    words = answer.text.split(" ")
    for i, word in enumerate(words):
        piece = word if i == 0 else f" {word}"
        yield {**base, "choices": [{"index": 0, "delta": {"content": piece}}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    wants_usage = (body.get("stream_options") or {}).get("include_usage")
    if wants_usage and answer.usage:
        yield {**base, "choices": [], "usage": _usage(body, answer)}


def main() -> None:
    """`python -m tests.models.openai_stub_server`: serve `OK` answers in a process of its own
    (the benchmarks' model server, so that it never competes for the measured process's GIL)
    until standard input closes; the first line printed is the API base."""
    import sys

    server = StubServer().start()
    print(server.api_base, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
