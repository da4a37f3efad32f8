"""A small OpenAI-compatible chat server with scripted answers, for the LLM
judge's tests. It speaks POST /v1/chat/completions on 127.0.0.1 (a port the
OS picks, printed as "port N" on the first line of stdout) until its stdin
closes.

The answer depends on a marker in the request's last user message,
"CASE=<name>" (the tests put it in a completion):

  (none)     judges arithmetic: the first "Step k: ..." line whose a+b=c (or
             a-b, a*b) is wrong, or whose "#N" / "Answer: N" differs from the
             last result; "-1" when none
  prose      the verdict inside a sentence ("... step 1 is where ...")
  sentence   the bare number ending a sentence ("The answer is 1.")
  decimal    a number that is not an index ("About 1.5 of the steps.")
  json       {"first_error": 1}
  garbage    a reply with no verdict in it
  empty      HTTP 200 with an empty body
  truncated  HTTP 200 whose body stops before its Content-Length
  slow       answers "1" after SLOW_SECONDS (default 60), unless the client
             hangs up first (then never: only a deadline ends the wait)
  ratelimit  429 with Retry-After: 1 the first time, then "1"
  flaky      500 the first time, then "1"
  missing    404 (not retried by the judge)

"usage" counts the user message's words as prompt tokens and 1 completion
token. GET /stats returns {"requests": {case: n}, "authorization": [...],
"verdicts": [{"steps": [...], "verdict": n}, ...]} (the arithmetic ones).
If EXPECTED_AUTHORIZATION is set, a request without that header gets 401.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
REQUESTS: dict[str, int] = {}
VERDICTS: list[dict[str, object]] = []
AUTHORIZATION: list[str] = []
SEEN: set[str] = set()
EQUATION = re.compile(r"(-?\d+)\s*([-+*])\s*(-?\d+)\s*=\s*(-?\d+)")
FINAL = re.compile(r"(?:#|Answer:)\s*(-?\d+)")


def first_wrong_step(user: str) -> int:
    last = None
    for line in user.splitlines():
        match = re.match(r"Step (\d+): (.*)$", line)
        if not match:
            continue
        index, text = int(match.group(1)), match.group(2)
        equation = EQUATION.search(text)
        if equation:
            a, op, b, c = int(equation.group(1)), equation.group(2), int(equation.group(3)), int(equation.group(4))
            value = a + b if op == "+" else a - b if op == "-" else a * b
            if value != c:
                return index
            last = c
            continue
        final = FINAL.search(text)
        if final and last is not None and int(final.group(1)) != last:
            return index
        if not final:
            return index  # a step that is neither a calculation nor the answer
    return -1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body go out as two writes: with Nagle's algorithm the
    # body waited for the client's delayed ACK of the headers, 40 ms on every
    # request after a connection's first (real servers set TCP_NODELAY too).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def client_hung_up_within(self, seconds: float) -> bool:
        """Waits up to `seconds` for the client to close its end; True if it did."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], left)
            if not readable:
                continue
            try:
                if not self.connection.recv(1, socket.MSG_PEEK):
                    return True  # end of stream: the client gave up
            except ConnectionResetError:
                return True
            time.sleep(left)  # bytes of a next request: not a hang-up; wait out the time
            return False
        return False

    def do_GET(self) -> None:
        if self.path != "/stats":
            self.reply(404, b"{}")
            return
        with LOCK:
            body = json.dumps({"requests": REQUESTS, "authorization": AUTHORIZATION, "verdicts": VERDICTS}).encode()
        self.reply(200, body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        expected = os.environ.get("EXPECTED_AUTHORIZATION")
        with LOCK:
            AUTHORIZATION.append(self.headers.get("Authorization", ""))
        if expected and self.headers.get("Authorization") != expected:
            self.reply(401, b'{"error": {"message": "bad key"}}')
            return
        if self.path != "/v1/chat/completions":
            self.reply(404, b'{"error": {"message": "no such path"}}')
            return
        user = [m["content"] for m in request.get("messages", []) if m.get("role") == "user"][-1]
        marker = re.search(r"CASE=(\w+)", user)
        case = marker.group(1) if marker else "arithmetic"
        with LOCK:
            REQUESTS[case] = REQUESTS.get(case, 0) + 1
            first_time = (case, user) not in SEEN
            SEEN.add((case, user))  # type: ignore[arg-type]

        def answer(content: str) -> None:
            body = {
                "id": "chatcmpl-scripted", "object": "chat.completion", "model": request.get("model", ""),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(user.split()), "completion_tokens": 1,
                          "total_tokens": len(user.split()) + 1},
            }
            self.reply(200, json.dumps(body).encode())

        if case == "arithmetic":
            verdict = first_wrong_step(user)
            steps = [m.group(1) for m in re.finditer(r"^Step \d+: (.*)$", user, re.MULTILINE)]
            with LOCK:
                VERDICTS.append({"steps": steps, "verdict": verdict})
            answer(str(verdict))
        elif case == "prose":
            answer("Looking at the work, step 1 is where it goes wrong: the sum is off.")
        elif case == "sentence":
            answer("The correct answer is 1.")
        elif case == "decimal":
            answer("About 1.5 of the steps look fine.")
        elif case == "json":
            answer('{"first_error": 1}')
        elif case == "garbage":
            answer("I would rather talk about the weather.")
        elif case == "empty":
            self.reply(200, b"")
        elif case == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "400")
            self.end_headers()
            self.wfile.write(b'{"choices": [{"message": {"content": "1"')
            self.wfile.flush()
            self.close_connection = True
        elif case == "slow":
            if self.client_hung_up_within(float(os.environ.get("SLOW_SECONDS", "60"))):
                self.close_connection = True
                return
            answer("1")
        elif case == "ratelimit" and first_time:
            self.reply(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "1"})
        elif case == "flaky" and first_time:
            self.reply(500, b'{"error": {"message": "try again"}}')
        elif case == "missing":
            self.reply(404, b'{"error": {"message": "model not found"}}')
        else:
            answer("1")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (the judge's deadline) is part of the script, not an error.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def main() -> None:
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or dies)
    server.shutdown()


if __name__ == "__main__":
    main()
