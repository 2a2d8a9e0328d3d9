"""InfluxDB sink: api_version 1 (POST /write to InfluxDB 1.x) or 2 (influxdb-client, synchronous).

Batches are at most ``batch_size`` lines, gzip-compressed, in millisecond precision. Our own
batching and retries: influxdb-client's batching mode can drop data on exit. A 4xx answer
(a point the server refuses) is narrowed down to the rows that caused it; those go to the
quarantine and the rest are written.
"""

from __future__ import annotations

import base64
import gzip
import logging
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from edge_gateway.loglimit import BurstLog
from edge_gateway.sinks.base import Rejected, Retry, Sink, http, transient
from edge_gateway.sinks.influxdb.config import InfluxConfig
from edge_gateway.sinks.influxdb.points import gateway_point, row_points, votes_point
from edge_gateway.store import Row

log = logging.getLogger("edge_gateway.sink.influxdb")

GATEWAY_POINT_EVERY_S = 60


class InfluxSink(Sink):
    name = "influxdb"

    def __init__(
        self, store_path: str, municipality: str, cfg: InfluxConfig, sinks: Sequence[str]
    ) -> None:
        # A telemetry row makes about 6 lines; keep a batch within batch_size lines.
        super().__init__(store_path, max(1, cfg.batch_size // 8), cfg.flush_interval_s)
        self.municipality = municipality
        self.cfg = cfg
        self.sinks = list(sinks)
        self.database_ready = cfg.api_version != 1 or not cfg.create_database
        self.last_gateway_point = 0.0
        self._writes: Any = None  # influxdb-client WriteService
        self._client: Any = None
        self.row_log = BurstLog(log)  # set_aside's lines, under this writer's logger

    # ------------------------------------------------------------------ transport

    def _v1_headers(self) -> dict[str, str]:
        h = {"Content-Type": "text/plain; charset=utf-8"}
        if self.cfg.username:
            cred = f"{self.cfg.username}:{self.cfg.password or ''}".encode()
            h["Authorization"] = "Basic " + base64.b64encode(cred).decode()
        elif self.cfg.token:
            h["Authorization"] = f"Token {self.cfg.token}"
        return h

    def _create_database(self) -> None:
        q = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.cfg.database}"'}).encode()
        headers = self._v1_headers()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        http("POST", f"{self.cfg.url}/query", q, headers)
        self.database_ready = True
        log.info("InfluxDB database %s is ready", self.cfg.database)

    def write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        body = "\n".join(lines).encode()
        if self.cfg.api_version == 1:
            if not self.database_ready:
                self._create_database()
            params = {"db": self.cfg.database, "precision": "ms"}
            if self.cfg.retention_policy:
                params["rp"] = self.cfg.retention_policy
            headers = self._v1_headers()
            headers["Content-Encoding"] = "gzip"
            url = f"{self.cfg.url}/write?{urllib.parse.urlencode(params)}"
            status, answer = http("POST", url, gzip.compress(body, 1), headers, timeout=30)
            if status != 204:  # what InfluxDB (and every 1.x-compatible server) answers a write
                raise Retry(
                    f"HTTP {status} to a write, not 204: is [influxdb] url InfluxDB? "
                    f"({answer[:60]!r})"
                )
            return
        self._write_v2(body)

    def _write_v2(self, body: bytes) -> None:
        from influxdb_client import InfluxDBClient, WriteService
        from influxdb_client.rest import ApiException

        if self._writes is None:
            self._client = InfluxDBClient(
                url=self.cfg.url,
                token=self.cfg.token or "",
                org=self.cfg.org,
                timeout=30_000,
                enable_gzip=True,
                retries=False,
            )
            # The generated service rather than write_api: it returns the HTTP status.
            self._writes = WriteService(self._client.api_client)
        try:
            _, status, _ = self._writes.post_write_with_http_info(
                org=self.cfg.org,
                bucket=self.cfg.bucket,
                body=body,
                precision="ms",
                content_type="text/plain; charset=utf-8",
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            if transient(status):
                raise Retry(f"HTTP {status}: {exc.reason}", status) from None
            raise Rejected(status, str(exc.body)[:300]) from None
        except Exception as exc:  # noqa: BLE001 - urllib3 connection errors and the like
            raise Retry(str(exc)[:300]) from None
        if status != 204:  # what InfluxDB 2.x/3.x and the compatible servers answer
            raise Retry(f"HTTP {status} to a write, not 204: is [influxdb] url InfluxDB?")

    # ------------------------------------------------------------------ sink

    def send(self, rows: list[Row]) -> None:
        lines = row_points(self.municipality, rows, self.store, time.time())
        try:
            for i in range(0, len(lines), self.cfg.batch_size):
                self.write_lines([text for _, text in lines[i : i + self.cfg.batch_size]])
        except Rejected:
            self._narrow(rows, lines)
        except Retry as exc:
            if not self.poisoned(exc):
                raise
            self._narrow(rows, lines)

    def probe(self) -> bool:
        try:
            http("GET", f"{self.cfg.url}/ping", None, {}, timeout=10)
        except (Retry, Rejected):
            return False
        return True

    def _narrow(self, rows: list[Row], lines: list[tuple[int, str]]) -> None:
        """Write row by row; quarantine each row the server refuses."""
        by_row: dict[int, list[str]] = {}
        for rid, text in lines:
            by_row.setdefault(rid, []).append(text)
        index = {r.id: r for r in rows}
        for rid, texts in by_row.items():
            try:
                self.write_lines(texts)
            except Rejected as exc:
                self.set_aside(
                    index[rid],
                    f"influxdb_{exc.status}",
                    "row refused",
                    "influxdb refused row %s (%s): quarantined",
                    rid,
                    exc.reason[:120],
                )
            except Retry as exc:
                if not self.poisoned(exc) or not self.strike(rid):
                    raise
                self.set_aside(
                    index[rid],
                    f"influxdb_{exc.status}",
                    "row failed",
                    "influxdb failed on row %s (%s): quarantined",
                    rid,
                    str(exc)[:120],
                )

    def tick(self, now: float) -> None:
        self.release_hidden(now)
        if now - self.last_gateway_point < GATEWAY_POINT_EVERY_S:
            return
        self.last_gateway_point = now
        depth, lag = self.store.depth_and_lag(self.sinks, now)
        p = gateway_point(self.municipality, self.store.counters(), depth, lag, now)
        try:
            self.write_lines([p.to_line_protocol()])
        except (Retry, Rejected) as exc:
            log.debug("gateway point not written: %s", exc)

    def release_hidden(self, now: float) -> None:
        """At a hidden poll's close, its per-choice counts per bench and minute, written whole."""
        for poll in self.store.to_release(now):
            lines = [
                votes_point(self.municipality, bench, poll, choice, minute, n).to_line_protocol()
                for bench, choice, minute, n in self.store.vote_minutes(poll)
            ]
            for i in range(0, len(lines), self.cfg.batch_size):
                self.write_lines(lines[i : i + self.cfg.batch_size])
            self.store.mark_released(poll)
            log.info("poll %s closed: its results (%d points) are written", poll, len(lines))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
