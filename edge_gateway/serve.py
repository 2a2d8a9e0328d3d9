"""Small HTTP servers: OTA bundles for the benches, and the Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from edge_gateway.store import backlog

if TYPE_CHECKING:
    from edge_gateway.view import GatewayView


# Each connection takes a thread for as long as it is open. Anyone who reaches the port (the
# OTA server listens on the benches' network) could open thousands and leave them idle: the
# gateway process would run out of threads and memory. So a connection silent for IDLE_S is
# closed, and past MAX_CONNECTIONS at once a new one is closed as soon as it is accepted.
IDLE_S = 20.0
MAX_CONNECTIONS = 32


class BoundedHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with at most ``max_connections`` connections (threads) at once."""

    daemon_threads = True
    request_queue_size = 64  # the listen backlog: a burst of benches is accepted, not dropped

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: refused at once, no thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self.slots.release()


class Server:
    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    """Files only: no directory listings, no dotfiles (``.git``, editor leftovers, keys)."""

    def send_head(self) -> Any:
        raw = unquote(self.path.split("?", 1)[0].split("#", 1)[0])
        if any(p.startswith(".") for p in raw.replace("\\", "/").split("/")):
            self.send_error(404)
            return None
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            self.send_error(404)
            return None
        return super().send_head()

    def list_directory(self, path: Any) -> Any:
        self.send_error(404)
        return None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@dataclass(frozen=True)
class Listen:
    """Where a server listens, and how it bounds its connections (see IDLE_S)."""

    port: int
    host: str = "0.0.0.0"
    idle_s: float = IDLE_S
    max_connections: int = MAX_CONNECTIONS

    def serve(self, handler: type[BaseHTTPRequestHandler], **kwargs: Any) -> Server:
        """Serve ``handler`` (made with ``kwargs``) in a thread; silent sockets time out."""
        timed = type(handler.__name__, (handler,), {"timeout": self.idle_s})  # per operation
        made = functools.partial(timed, **kwargs)
        return Server(BoundedHTTPServer((self.host, self.port), made, self.max_connections))


def serve_ota(directory: str, at: Listen) -> Server:
    """Serve a bundle directory read-only over HTTP (benches fetch manifests and files)."""
    return at.serve(_QuietFiles, directory=directory)


def metrics_text(gw: GatewayView) -> str:
    counts = gw.counts
    try:
        depth, lag = backlog(gw.cfg.spool.path, [s.name for s in gw.sinks], time.time())
    except Exception:  # noqa: BLE001 - the store's trouble is in store_writable, not a 500
        depth, lag = -1, -1.0
    lines = []

    def metric(name: str, kind: str, value: float, labels: str = "", help_: str = "") -> None:
        if help_:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{labels} {value}")

    for name in ("received", "accepted", "rejected", "duplicates"):
        metric(
            f"klupa_gateway_{name}_total", "counter", counts.get(name, 0), "", f"messages {name}"
        )
    reasons = sorted(k.split(":", 1)[1] for k in counts if k.startswith("rejected:"))
    for i, reason in enumerate(reasons):
        metric(
            "klupa_gateway_rejected_by_reason_total",
            "counter",
            counts[f"rejected:{reason}"],
            f'{{reason="{reason}"}}',
            "rejected messages by reason" if i == 0 else "",
        )
    metric(
        "klupa_gateway_clock_rejected_total",
        "counter",
        counts.get("clock", 0),
        "",
        "records quarantined for their time alone (not receipted: the bench sends them again)",
    )
    metric(
        "klupa_gateway_store_writable",
        "gauge",
        int(gw.store_state == "ok"),
        "",
        "0 while the store cannot write (full disk): messages are not acknowledged",
    )
    metric(
        "klupa_gateway_clock_synchronised",
        "gauge",
        int(gw.clock_ok.is_set()),
        "",
        "1 once the gateway takes messages (clock synchronised, or not required)",
    )
    metric("klupa_gateway_spool_depth", "gauge", depth, "", "rows not yet forwarded by every sink")
    metric("klupa_gateway_forward_lag_seconds", "gauge", lag, "", "age of the oldest such row")
    metric("klupa_gateway_commits_total", "counter", gw.commits, "", "store group commits")
    for i, b in enumerate(sorted(gw.health.benches.values(), key=lambda b: b.bench)):
        metric(
            "klupa_bench_online",
            "gauge",
            int(b.online),
            f'{{bench="{b.bench}"}}',
            "1 when the bench is online" if i == 0 else "",
        )
    metric(
        "klupa_gateway_uptime_seconds", "gauge", round(time.time() - gw.started, 1), "", "uptime"
    )
    return "\n".join(lines) + "\n"


def health(gw: GatewayView) -> dict[str, Any]:
    """The gateway's health in words, never a raw error: what an operator's probe reads."""
    broker = "connected" if gw.connected.is_set() else "disconnected"
    clock = "synchronised" if gw.clock_ok.is_set() else "waiting for sync"
    ok = broker == "connected" and gw.store_state == "ok" and gw.clock_ok.is_set()
    return {"ok": ok, "broker": broker, "store": gw.store_state, "clock": clock}


def serve_metrics(gw: GatewayView, at: Listen) -> Server:
    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path == "/healthz":
                h = health(gw)
                data = json.dumps(h).encode()
                self.send_response(200 if h["ok"] else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if path != "/metrics":
                self.send_error(404)
                return
            body = metrics_text(gw).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return at.serve(Metrics)
