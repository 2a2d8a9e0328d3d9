"""The sink loop: read past the watermark, send, advance; back off on transient failures."""

from __future__ import annotations

import abc
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import msgspec

from edge_gateway.loglimit import BurstLog
from edge_gateway.payloads import Event, Telemetry, Vote
from edge_gateway.store import Row, Store
from edge_gateway.text import printable
from klupa.outbound import OPENER

log = logging.getLogger("edge_gateway.sink")

WATERMARK_SAVE_S = 10.0  # while busy: at most this often
WATERMARK_BUSY_ROWS = 1_000  # rows forwarded since the last save that make a sink "busy"
WATERMARK_IDLE_S = 300.0  # at idle: this often (a crash re-sends at most this much)
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 20.0  # a sink notices a receiver that came back within 30 s
POISON_STRIKES = 3  # 5xx answers to one row alone, server otherwise up, before quarantine

_telemetry = msgspec.json.Decoder(Telemetry)
_event = msgspec.json.Decoder(Event)
_vote = msgspec.json.Decoder(Vote)


class Retry(Exception):
    """A transient failure (timeout, connection refused, 5xx, 429): send the batch again later.

    ``status`` is the server's HTTP status when it answered (0 when it did not).
    """

    def __init__(self, text: str, status: int = 0) -> None:
        super().__init__(text)
        self.status = status


class Rejected(Exception):
    """The receiver refused the request as malformed (4xx): quarantine its rows and move on."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


# Answers that say nothing against the data itself: a wrong token (401/403), a wrong URL or a
# missing database or bucket (404/405) are configuration faults, and the data waits for the fix.
RETRY_STATUSES = frozenset({401, 403, 404, 405, 408, 429})


def transient(status: int) -> bool:
    """Whether an HTTP status means "send the batch again later" rather than "this is bad"."""
    return status in RETRY_STATUSES or status >= 500 or status == 0


def http(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float = 10,
) -> tuple[int, bytes]:
    """One HTTP request; returns (status, body) for 2xx, raises Retry or Rejected otherwise.
    Redirects are not followed: a 3xx is a Retry naming where it points (the configured
    url must be the receiver's own address), and the data waits."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with OPENER.open(req, timeout=timeout) as resp:  # no redirect followed: klupa.outbound
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        text = exc.read()[:300].decode("utf-8", "replace")
        if 300 <= exc.code < 400:
            where = printable(exc.headers.get("Location", ""), 120)
            raise Retry(
                f"HTTP {exc.code}: redirected to {where!r}, not followed (it would carry the "
                "credentials); set the url to the receiver's own address",
                exc.code,
            ) from None
        if transient(exc.code):
            raise Retry(f"HTTP {exc.code}: {text}", exc.code) from None
        raise Rejected(exc.code, text) from None
    except (OSError, TimeoutError) as exc:
        raise Retry(str(exc)) from None


def decode_row(row: Row) -> Any:
    """The typed message of a stored row (rows were validated before they were stored)."""
    if row.kind == "telemetry":
        return _telemetry.decode(row.body)
    if row.kind == "event":
        return _event.decode(row.body)
    if row.kind == "vote":
        return _vote.decode(row.body)
    if row.kind == "state":
        return json.loads(row.body)
    return None


class Sink(threading.Thread, abc.ABC):
    """Base of every sink. Subclasses implement :meth:`send` (and may override :meth:`tick`)."""

    name: str = "sink"

    def __init__(self, store_path: str, batch_rows: int, interval_s: float) -> None:
        super().__init__(name=f"sink-{self.name}", daemon=True)
        self.store = Store(store_path)
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.watermark = self.store.watermark(self.name)
        self.saved_at = 0.0
        self.saved_mark = self.watermark
        self.sent = 0
        self.failures = 0
        self.last_error = ""
        self.tick_error = ""  # the periodic work's failure, as last logged
        self.row_log = BurstLog(log)  # a line per row set aside, limited per bench (a writer's own)
        self._up: bool | None = None  # probe() during this pass, once
        self.strikes: dict[Any, int] = {}

    @abc.abstractmethod
    def send(self, rows: list[Row]) -> None:
        """Deliver ``rows`` to the receiver, or raise Retry or Rejected (see those)."""

    def tick(self, now: float) -> None:
        """Periodic work besides forwarding rows (e.g. the gateway measurement)."""

    def probe(self) -> bool:
        """Whether the receiver answers a request that carries no rows (subclasses ask it)."""
        return False

    def poisoned(self, exc: Retry) -> bool:
        """Whether a server error (5xx) may be the rows' fault: the server answered 5xx to
        them while it answers a request without them. Then the batch is split to find the
        row; when every request fails (the server is down) the rows wait, nothing is lost."""
        if exc.status < 500:
            return False
        if self._up is None:
            self._up = self.probe()
        return self._up

    def strike(self, key: Any) -> bool:
        """One more 5xx for ``key`` alone while the server was up; True at POISON_STRIKES.

        A single 5xx may be the server's passing trouble: only one that comes back on
        POISON_STRIKES passes (with the backoff between them) moves a row to quarantine.
        """
        n = self.strikes.get(key, 0) + 1
        if len(self.strikes) > 10_000:
            self.strikes.clear()
        self.strikes[key] = n
        if n >= POISON_STRIKES:
            del self.strikes[key]
            return True
        return False

    def set_aside(
        self, row: Row, reason: str, kind: str, fmt: str, *args: Any, level: int = logging.WARNING
    ) -> None:
        """A row the receiver will not take (the rest go on): quarantined as ``reason``, with
        its line, at most BURST lines of ``kind`` per bench a minute (edge_gateway.loglimit)."""
        self.row_log.log(level, row.bench, kind, fmt, *args)
        self.quarantine(row, reason)

    def quarantine(self, row: Row, reason: str) -> None:
        with self.store.transaction():
            self.store.quarantine(
                f"sink/{self.name}/{row.bench}/{row.kind}", reason, "", row.body or b"", time.time()
            )
            self.store.bump({f"sink_rejected:{self.name}": 1})

    def save_due(self, now: float) -> bool:
        """Busy (WATERMARK_BUSY_ROWS since the last save): every WATERMARK_SAVE_S; at idle
        every WATERMARK_IDLE_S. A save is a commit of its own, and at idle a commit costs the
        SD card a few 4 KiB pages (the WAL's and its index's) whatever it holds."""
        if self.watermark == self.saved_mark:
            return False
        since = now - self.saved_at
        if self.watermark - self.saved_mark >= WATERMARK_BUSY_ROWS:
            return since >= WATERMARK_SAVE_S
        return since >= WATERMARK_IDLE_S

    def advance(self, msg_id: int, force: bool = False) -> None:
        """Move the watermark; it is saved when :meth:`save_due` (or when forced).

        After a crash the sink re-sends what it sent since the last save: forwarding is
        idempotent, and an SD card sees one commit fewer per batch.
        """
        self.watermark = msg_id
        now = time.monotonic()
        if not force and not self.save_due(now):
            return
        self.saved_at = now
        self.saved_mark = msg_id
        with self.store.transaction():
            self.store.set_watermark(self.name, msg_id)

    def pass_once(self) -> int:
        """Forward one batch; returns the number of rows handled (0: nothing to do)."""
        rows = self.store.rows_after(self.watermark, self.batch_rows)
        if not rows:
            return 0
        self._up = None
        self.send(rows)
        self.advance(rows[-1].id)
        self.sent += len(rows)
        return len(rows)

    def run(self) -> None:
        backoff = BACKOFF_MIN_S
        last_tick = 0.0
        while not self.stopping.is_set():
            now = time.time()
            if now - last_tick >= 1:
                last_tick = now
                self._tick(now)
            try:
                n = self.pass_once()
            except Retry as exc:
                self.failures += 1
                if self.last_error != str(exc):
                    log.warning("%s: will retry: %s", self.name, exc)
                self.last_error = str(exc)
                delay = backoff * (0.5 + random.random())
                backoff = min(BACKOFF_MAX_S, backoff * 2)
                self.stopping.wait(delay)
                continue
            except Exception as exc:  # noqa: BLE001
                self.failures += 1
                log.exception("%s: unexpected failure: %s", self.name, exc)
                self.stopping.wait(backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)
                continue
            if self.last_error:
                log.info("%s: forwarding again", self.name)
                self.last_error = ""
            backoff = BACKOFF_MIN_S
            if n < self.batch_rows:
                self.advance(self.watermark)  # saved when due, also with nothing new to send
                self.wake.wait(self.interval_s)
                self.wake.clear()

    def _tick(self, now: float) -> None:
        """:meth:`tick`, once a second: a failure is logged when it starts or changes, not
        at every try (a receiver down for a night would write a line a second)."""
        try:
            self.tick(now)
        except Exception as exc:  # noqa: BLE001 - a sink must not die
            text = str(exc)
            if text != self.tick_error:
                log.warning(
                    "%s: periodic work failed (tried again every second): %s", self.name, exc
                )
            self.tick_error = text
            return
        if self.tick_error:
            log.info("%s: periodic work done again", self.name)
            self.tick_error = ""

    def flush(self, deadline: float) -> None:
        """On shutdown: forward what is left, as long as the receiver answers and time allows."""
        while time.time() < deadline:
            try:
                if self.pass_once() == 0:
                    self.advance(self.watermark, force=True)
                    return
            except Exception as exc:  # noqa: BLE001
                log.warning(
                    "%s: not flushed at shutdown (%s); it is kept in the store", self.name, exc
                )
                break
        self.advance(self.watermark, force=True)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def close(self) -> None:
        """Release the receiver's client, if the sink keeps one (after :meth:`flush`)."""

    def info(self) -> dict[str, Any]:
        return {"sink": self.name, "watermark": self.watermark, "sent": self.sent}
