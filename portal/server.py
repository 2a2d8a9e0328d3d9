"""Running the portal: in the foreground until a signal (`klupa portal serve`), or in a thread.

From Python::

    from portal.server import serve, PortalThread
    serve("portal.sqlite", "127.0.0.1", 8080)        # blocks; returns 0 after SIGINT/SIGTERM
    with PortalThread("portal.sqlite") as portal:    # a free port on 127.0.0.1
        print(portal.url)
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType, TracebackType

import uvicorn

from portal import logs
from portal.api import build
from portal.db import open_database

log = logging.getLogger("portal")


class ServeError(RuntimeError):
    """The portal could not start serving."""


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
    )
    return _Server(config)


def serve(db: str, host: str = "127.0.0.1", port: int = 8080) -> int:
    """Migrate the database, then serve until SIGINT or SIGTERM; returns 0."""
    logs.setup()
    server = make_server(db, host, port)
    log.info("portal starting", extra={"host": host, "port": port})
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot listen
        if exc.code:
            raise ServeError(f"cannot serve on {host}:{port} (see the log line above)") from exc
    log.info("portal stopped")
    return 0


class PortalThread:
    """The portal served from a background thread (for tests and the demo)."""

    def __init__(self, db: str, host: str = "127.0.0.1", port: int | None = None) -> None:
        if port is None:
            from klupa.services import free_port

            port = free_port()
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
