"""Small HTTP servers: OTA bundles for the benches, and the Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import functools
import threading
import time
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_gateway.service import Gateway


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
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def serve_ota(directory: str, port: int, host: str = "0.0.0.0") -> Server:
    """Serve a bundle directory read-only over HTTP (benches fetch manifests and files)."""
    handler = functools.partial(_QuietFiles, directory=directory)
    return Server(ThreadingHTTPServer((host, port), handler))


def metrics_text(gw: Gateway) -> str:
    counts = gw.counts
    from edge_gateway.store import Store

    st = Store(gw.cfg.spool.path, readonly=True)
    try:
        depth, lag = st.depth_and_lag([s.name for s in gw.sinks], time.time())
    finally:
        st.close()
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


def serve_metrics(gw: Gateway, port: int, host: str = "0.0.0.0") -> Server:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?")[0] != "/metrics":
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

    return Server(ThreadingHTTPServer((host, port), Handler))
