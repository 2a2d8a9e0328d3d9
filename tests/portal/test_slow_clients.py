"""Slow clients (issue 18, item 6): idle connections and requests that never finish arriving are
closed by the served portal (`klupa portal serve`), so they cannot tie it up."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from portal.server import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, KEEP_ALIVE_S

# uvicorn's today: a half-sent request was held open for as long as the client liked.
MARGIN_S = 5.0


def seconds_until_closed(portal: Any, send: bytes, read_response: bool = False) -> float:
    """Open a connection, send `send`, and time how long until the server closes it."""
    with socket.create_connection(("127.0.0.1", portal.port), timeout=60) as sock:
        start = time.monotonic()
        if send:
            sock.sendall(send)
        if read_response:  # a whole request: read its answer, then stay idle
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
            start = time.monotonic()
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
        return time.monotonic() - start


def test_idle_and_half_sent_requests_are_closed(portal: Any) -> None:
    cases = {
        "idle from the start": (b"", False, HEADER_TIMEOUT_S),
        "half the headers": (
            b"GET /healthz HTTP/1.1\r\nHost: portal\r\nX-Slow: ",
            False,
            HEADER_TIMEOUT_S,
        ),
        "idle after a response": (
            b"GET /healthz HTTP/1.1\r\nHost: portal\r\n\r\n",
            True,
            KEEP_ALIVE_S,
        ),
        "half the body": (
            b"POST /api/v1/votes HTTP/1.1\r\nHost: portal\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\nAuthorization: Bearer "
            + portal.token("mostar").encode()
            + b'\r\n\r\n{"votes": [',
            False,
            BODY_TIMEOUT_S,
        ),
    }
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        waits = {
            name: pool.submit(seconds_until_closed, portal, send, read)
            for name, (send, read, _) in cases.items()
        }
        took = {name: future.result() for name, future in waits.items()}
    for name, (_, _, limit) in cases.items():
        assert took[name] <= limit + MARGIN_S, f"{name}: still open after {took[name]:.1f} s"
        assert took[name] >= limit - 1, f"{name}: closed after {took[name]:.1f} s, too early"


def test_a_slow_but_steady_request_within_the_deadline_is_answered(portal: Any) -> None:
    with socket.create_connection(("127.0.0.1", portal.port), timeout=30) as sock:
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: portal\r\n", b"\r\n"):
            sock.sendall(part)
            time.sleep(1)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
