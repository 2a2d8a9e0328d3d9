"""Running the portal: in the foreground until a signal (`klupa portal serve`), or in a thread.

From Python::

    from portal.server import serve, PortalThread
    serve("portal.sqlite", "127.0.0.1", 8080)        # blocks; returns 0 after SIGINT/SIGTERM
    with PortalThread("portal.sqlite") as portal:    # a free port on 127.0.0.1
        print(portal.url)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from portal import logs
from portal.api import build
from portal.db import open_database

log = logging.getLogger("portal")


class ServeError(RuntimeError):
    """The portal could not start serving."""


# Slow clients (a stalled gateway link, or someone holding connections open on purpose) must
# not tie up the server: an idle keep-alive connection is closed after KEEP_ALIVE_S, a request
# whose headers are not complete within HEADER_TIMEOUT_S (from the connection or the first byte
# after a response) and one whose body is not complete within BODY_TIMEOUT_S (1 MiB in 20 s is
# 52 kB/s; a gateway's batch of 500 votes is about 80 kB) are cut. docs/portal.md gives the
# matching reverse-proxy settings.
KEEP_ALIVE_S = 5
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 20.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with deadlines for a request's headers and its body."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_deadline: asyncio.TimerHandle | None = None
        self.reading: object = None  # the h11 state the deadline is for

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_reading()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_reading()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _cancel_deadline(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
        self.read_deadline, self.reading = None, None

    def _watch_reading(self) -> None:
        """Arm the deadline of the part of a request being read; cancel it once it is in."""
        state = self.conn.their_state
        waiting_for_headers = state is h11.IDLE and (
            self.timeout_keep_alive_task is None  # the keep-alive timer covers an idle wait
        )
        if waiting_for_headers or state is h11.SEND_BODY:
            if self.reading is not state:
                self._cancel_deadline()
                delay = HEADER_TIMEOUT_S if state is h11.IDLE else BODY_TIMEOUT_S
                self.read_deadline = self.loop.call_later(delay, self._too_slow, state)
                self.reading = state
        else:
            self._cancel_deadline()

    def _too_slow(self, state: object) -> None:
        part = "headers" if state is h11.IDLE else "body"
        log.info("closing a slow connection", extra={"waiting_for": part, "client": self.client})
        self.read_deadline, self.reading = None, None
        if not self.transport.is_closing():
            self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's server, but a signal only stops it: the process then exits 0, not by the signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(sig).name})
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def make_server(db: str, host: str, port: int) -> _Server:
    engine = open_database(db)
    config = uvicorn.Config(
        build(engine),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        http=GuardedH11Protocol,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    return _Server(config)


def serve(db: str, host: str = "127.0.0.1", port: int = 8080, alerts: str | None = None) -> int:
    """Migrate the database, then serve until SIGINT or SIGTERM; returns 0.

    With ``alerts`` (a TOML file with an ``[alerts]`` table) the portal also watches the
    gateways' heartbeats and sends the "gateway down" alert (portal.alerts).
    """
    watch = None
    if alerts is not None:  # checked before anything starts: a bad file is one line, nothing runs
        from portal.alerts import GatewayWatch, load_config

        try:
            cfg = load_config(alerts)
        except ValueError as exc:
            raise ServeError(str(exc).replace("\n", "; ")) from None
    logs.setup()
    server = make_server(db, host, port)
    if alerts is not None:
        watch = GatewayWatch(open_database(db), cfg).start()
    log.info("portal starting", extra={"host": host, "port": port})
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot listen
        if exc.code:
            raise ServeError(f"cannot serve on {host}:{port} (see the log line above)") from exc
    finally:
        if watch is not None:
            watch.stop()
    log.info("portal stopped")
    return 0


class PortalThread:
    """The portal served from a background thread (for tests and the demo)."""

    def __init__(self, db: str, host: str = "127.0.0.1", port: int | None = None) -> None:
        if port is None:
            with socket.socket() as probe:  # a free loopback port, as the test fixtures pick one
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.host, self.port = host, port
        self.server = make_server(db, host, port)
        self.thread = threading.Thread(target=self.server.run, name="portal", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> PortalThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the portal did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> PortalThread:
        return self.start()

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
