"""The gateway's writer thread: validate a group, store it in one transaction, then acknowledge.

The guarantee :mod:`edge_gateway.service` states is kept here: a group of messages is validated,
committed in one SQLite transaction (WAL, synchronous=FULL), and only then acknowledged to the
broker in the order received, on the connection it came on. While the store cannot write (a
full disk) the group is held, not acknowledged, and tried again; a message that breaks the store
alone is quarantined and acknowledged, so it cannot stop the gateway at every restart.
"""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
import paho.mqtt.client as mqtt

from edge_gateway import protocol as P
from edge_gateway.config import Config
from edge_gateway.forwarder import Forwarder
from edge_gateway.health import Change, Health
from edge_gateway.ingestlog import Incoming, LogStage
from edge_gateway.loglimit import BurstLog
from edge_gateway.receipts import Receipts
from edge_gateway.store import Store, local_day, state_body
from edge_gateway.storefail import disk_full, store_unavailable
from edge_gateway.text import printable

log = logging.getLogger("edge_gateway")

GROUP_MAX = 2000
RECEIPT_MIN_INTERVAL_S = 1.0
SAVE_EVERY_S = 30.0
REJECT_LOG_INTERVAL_S = 60.0
STORE_RETRY_S = 5.0  # while the store cannot write (full disk): how often to try again
STORE_LOG_INTERVAL_S = 60.0
CLOCK_REJECTED = (
    "clock: a record from %s is %s (%s) by this gateway's clock; quarantined and not "
    "receipted, so the bench sends it again: check the bench's and this machine's time"
)


@dataclass
class Group:
    """What one group's messages did, gathered for after its commit."""

    counts: Counter[str] = field(default_factory=Counter)
    touched: set[str] = field(default_factory=set)  # benches whose state the group changed
    changes: list[Change] = field(default_factory=list)
    rejects: list[tuple[str, str, str]] = field(default_factory=list)  # bench, reason, detail
    receipted: list[tuple[str, int, int]] = field(default_factory=list)  # bench, boot, seq


class Ingest(LogStage, abc.ABC):
    """The writer side of :class:`~edge_gateway.service.Gateway`, which sets these up."""

    cfg: Config
    m: str
    store: Store
    queue: queue.Queue[Incoming | None]
    counts: Counter[str]
    health: Health
    receipts: Receipts
    receipt_dirty: set[str]
    receipt_sent: dict[str, float]
    reject_logged: dict[tuple[str, str], float]
    # The lines a bench's own messages make (a health change, a fault): limited per bench and
    # kind, so a flapping or chattering bench cannot flood the journal on the SD card.
    bench_log: BurstLog
    generation: int
    connected: threading.Event
    closing: bool
    forwarder: Forwarder
    commits: int
    day_sums: dict[tuple[str, str], list[float]]
    unsaved_counts: Counter[str]
    unsaved_benches: set[str]
    last_save: float
    client: mqtt.Client
    store_state: str
    store_logged: float
    held: list[Incoming]

    @abc.abstractmethod
    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        """Publish on the gateway's connection (QoS 1)."""

    @abc.abstractmethod
    def _housekeeping(self, now: float) -> None:
        """The gateway's upkeep, done by the writer between groups (it owns the store)."""

    def save_every(self) -> float:
        """Seconds between saves of counters and bench state (ten batches with the log)."""
        return max(SAVE_EVERY_S, 10 * self.cfg.spool.batch_s)

    def _write_loop(self) -> None:
        stop = False
        retry_at = 0.0
        while True:
            batch: list[Incoming] = []
            retrying = bool(self.held)
            if retrying:  # the store could not write: try the same group again, in order
                if stop or self.closing:
                    break  # not acknowledged (or in the ingest log): kept for the next start
                if time.time() < retry_at:
                    time.sleep(0.2)
                    try:
                        self._housekeeping(time.time())
                    except Exception as exc:  # noqa: BLE001
                        self._store_failed(exc, time.time(), "upkeep")
                    continue
                batch = self.held
            elif stop and not self.logged:
                break
            elif not stop:
                batch, stop = self._take(GROUP_MAX)
            now = time.time()
            if retrying:
                self.held = self._store(batch, now)
                self._logged_stored()
            elif batch and not self._log_group(batch, now):
                if self.held:  # the log's messages are held for the store: this group after
                    self.held.extend(batch)
                else:
                    self._flush_log(now, batch)  # in order: what the log holds goes first
            if not self.held and self._log_due(now, stop):
                self._flush_log(now)
            if self.held:
                retry_at = now + STORE_RETRY_S
            try:
                self._housekeeping(now)
            except Exception as exc:  # noqa: BLE001
                self._store_failed(exc, now, "upkeep")

    def _take(self, limit: int) -> tuple[list[Incoming], bool]:
        """Up to ``limit`` waiting messages (waits 0.1 s for the first); True on the stop mark."""
        batch: list[Incoming] = []
        try:
            first = self.queue.get(timeout=0.1)
            if first is None:
                return batch, True
            batch.append(first)
            while len(batch) < limit:
                item = self.queue.get_nowait()
                if item is None:
                    return batch, True
                batch.append(item)
        except queue.Empty:
            pass
        return batch, False

    def _store(self, batch: list[Incoming], now: float) -> list[Incoming]:
        """Store and acknowledge a group; returns what is left when the store cannot write.

        A group that fails for something else (a message no one foresaw) is stored one message
        at a time, and the one that cannot be stored is quarantined and acknowledged: it must
        not come back from the broker at every restart and stop the gateway for ever.
        """
        try:
            self._commit_group(batch, now)
        except Exception as exc:  # noqa: BLE001
            if store_unavailable(exc):
                self._store_failed(exc, now, f"a group of {len(batch)} messages")
                return batch
            if len(batch) > 1:
                log.warning(
                    "a group of %d messages could not be stored (%s); storing them one by one",
                    len(batch),
                    type(exc).__name__,
                )
                for i, item in enumerate(batch):
                    if self._store([item], now):
                        return batch[i:]
                return []
            try:
                self._quarantine_alone(batch[0], exc, now)
            except Exception as exc2:  # noqa: BLE001
                self._store_failed(exc2, now, "a quarantine")
                return batch
            return []
        if self.store_state != "ok":
            log.warning("the store writes again; taking messages (was: %s)", self.store_state)
            self.store_state = "ok"
        return []

    def _store_failed(self, exc: BaseException, now: float, what: str) -> None:
        self.store_state = "disk_full" if disk_full(exc) else "error"
        self.counts["store_failures"] += 1
        if now - self.store_logged >= STORE_LOG_INTERVAL_S:
            self.store_logged = now
            if self.store_state == "disk_full":
                log.error(
                    "the store's disk is full (%s): %s not stored and not acknowledged; the "
                    "broker keeps them; retrying every %.0f s (free space on %s)",
                    printable(exc),
                    what,
                    STORE_RETRY_S,
                    self.cfg.spool.path,
                )
            else:
                log.error(
                    "the store cannot write (%s: %s): %s not stored and not acknowledged; "
                    "retrying every %.0f s",
                    type(exc).__name__,
                    printable(exc),
                    what,
                    STORE_RETRY_S,
                )

    def _quarantine_alone(self, item: Incoming, exc: BaseException, now: float) -> None:
        """A message that breaks the store: quarantine it in its own transaction, acknowledge."""
        reason = "unstorable"
        with self.store.transaction():
            self.store.quarantine(item.topic, reason, type(exc).__name__, item.payload, item.t)
            self.store.bump({"received": 1, "rejected": 1, f"rejected:{reason}": 1})
        self.counts.update({"received": 1, "rejected": 1, f"rejected:{reason}": 1})
        if item.qos > 0 and item.generation == self.generation:
            self.client.ack(item.mid, item.qos)
        log.error(
            "a message on %s could not be stored (%s: %s); quarantined as %s",
            printable(item.topic, 80),
            type(exc).__name__,
            printable(exc),
            reason,
        )

    def _identity(self, kind: str, bench: str, payload: bytes) -> tuple[int, int] | None:
        """(boot, seq) of a rejected record when they are readable, for its receipt."""
        if kind not in P.RECORD_KINDS:
            return None
        try:
            P.check_depth(payload)
            obj = msgspec.json.decode(payload)
        except Exception:  # noqa: BLE001 - anything unreadable has no identity
            return None
        if not isinstance(obj, dict) or obj.get("bench") != bench:
            return None
        boot, seq = obj.get("boot"), obj.get("seq")
        if type(boot) is not int or type(seq) is not int or boot < 1 or seq < 1:
            return None
        if boot > 2**53 or seq > 2**53:
            return None
        return boot, seq

    def _judge(self, item: Incoming, now: float) -> P.Message:
        """Validate one message; anything that goes wrong doing so is a ProtocolError. One
        from the ingest log is judged by the clock it arrived at, as it would have been, also
        when the log broke while it waited there."""
        if item.generation < 0:
            now = item.t
        try:
            return P.validate(item.topic, item.payload, now, self.m)
        except P.ProtocolError:
            raise
        except Exception as exc:  # noqa: BLE001 - no payload may stop the gateway
            raise P.ProtocolError("internal", f"{type(exc).__name__} while judging") from None

    def _commit_group(self, batch: list[Incoming], now: float) -> None:
        g = Group()
        self.day_sums = {}
        saved = added = False
        try:
            with self.store.transaction():
                for item in batch:
                    self._add(item, now, g)
                if self.day_sums:
                    self.store.add_daily(self.day_sums)
                for c in g.changes:
                    self._store_change(c)
                g.counts["commits"] += 1
                self.unsaved_counts.update(g.counts)
                added = True
                self.unsaved_benches |= g.touched
                # Counters and bench state are saved at most every save_every() (and with every
                # health change): fewer pages per commit on an SD card. A crash loses at most
                # that much of the counters; the messages themselves are in every commit.
                if g.changes or now - self.last_save >= self.save_every():
                    self._save_state()
                    saved = True
        except BaseException:
            if added:
                self.unsaved_counts.subtract(g.counts)
                self.unsaved_counts = +self.unsaved_counts
            raise
        if saved:
            self._saved(now)
        self.commits += 1
        self.counts.update(g.counts)
        self._committed(batch, g, now)

    def _add(self, item: Incoming, now: float, g: Group) -> None:
        """One message of a group, in its open transaction: stored, or quarantined."""
        st = self.store
        g.counts["received"] += 1
        try:
            msg = self._judge(item, now)
        except P.ProtocolError as exc:
            self._reject(item, exc, g)
            return
        if isinstance(msg, P.Status):
            c = self.health.on_status(
                msg.bench,
                msg.state,
                item.t,
                boot=msg.boot,  # type: ignore[arg-type]
                fw=msg.fw,
                until=msg.until,
                ts=msg.ts if msg.state == "online" else None,
            )
            g.counts["status"] += 1
            if c:
                g.changes.append(c)
            g.touched.add(msg.bench)
            self.receipt_dirty.discard(msg.bench)
            return
        kind = P.kind_of(msg)
        bench, boot, seq, ts = msg.bench, int(msg.boot), int(msg.seq), int(msg.ts)
        rid = st.insert_message(bench, boot, seq, kind, ts, item.t, item.payload)
        g.receipted.append((bench, boot, seq))
        g.touched.add(bench)
        c = self.health.on_record(bench, item.t)
        if c:
            g.changes.append(c)
        if rid is None:
            other = self._other_record(bench, boot, seq, kind, item.payload)
            if other:
                # Not a re-send: another record under a stored identity (a boot counter
                # that went back, a replaced bench not seeded, a replay). The stored one
                # stays; this one is kept aside for a person, not dropped unseen.
                g.counts["rejected"] += 1
                g.counts["rejected:identity_reused"] += 1
                st.quarantine(item.topic, "identity_reused", other, item.payload, item.t)
                g.rejects.append((bench, "identity_reused", other))
                return
            g.counts["duplicates"] += 1
            return
        g.counts["accepted"] += 1
        self._derive(msg, rid)

    def _other_record(self, bench: str, boot: int, seq: int, kind: str, payload: bytes) -> str:
        """Why a record whose identity is stored is not a re-send of the stored one, or "".

        A re-send is the same record again (docs/protocol.md); compared as JSON values, so
        spacing or a number's spelling does not matter, and without `ts`: the bench keeps a
        record made before its clock was set with an uptime stamp, and a re-send after a
        clock correction can carry another `ts` for the same record.
        """
        stored = self.store.stored_record(bench, boot, seq)
        if stored is None or stored[1] is None:
            return ""  # a reject for good (its body not kept): re-sending it changes nothing
        where = f"{boot}/{seq}"
        if stored[0] != kind:
            return f"{where} is stored as {stored[0]}, this is {kind}"
        if stored[1] == payload:
            return ""
        try:
            old, new = msgspec.json.decode(stored[1]), msgspec.json.decode(payload)
        except msgspec.DecodeError:
            return f"{where} is stored with another body"
        if isinstance(old, dict) and isinstance(new, dict):
            old.pop("ts", None)
            new.pop("ts", None)
        return "" if old == new else f"{where} is stored with another body"

    def _reject(self, item: Incoming, exc: P.ProtocolError, g: Group) -> None:
        """Quarantine a message that breaks the protocol; keep its identity when readable."""
        st = self.store
        g.counts["rejected"] += 1
        g.counts[f"rejected:{exc.reason}"] += 1
        st.quarantine(item.topic, exc.reason, exc.detail, item.payload, item.t)
        bench = ""
        try:
            _, bench, kind = P.parse_topic(item.topic)
            ident = self._identity(kind, bench, item.payload)
        except P.ProtocolError:
            ident = None
        if exc.reason in P.CLOCK_REASONS:
            # Not receipted: the bench keeps it and sends it again, and it is taken
            # once the two clocks agree (docs/protocol.md, Receipt).
            g.counts["clock"] += 1
            ident = None
        elif exc.reason == "internal":
            # The gateway's own fault, not the record's: not receipted either, so the bench
            # keeps it and a fixed gateway takes it (a receipt would have it deleted).
            ident = None
        if ident is not None:
            st.insert_message(bench, ident[0], ident[1], "rejected", 0, item.t, None)
            g.receipted.append((bench, ident[0], ident[1]))
        g.rejects.append((bench or item.topic, exc.reason, exc.detail))

    def _committed(self, batch: list[Incoming], g: Group, now: float) -> None:
        """Durable now: receipts may cover the group, and it is acknowledged in the order
        received, on the connection it came on; then the logs, and the sinks are woken."""
        for bench, boot, seq in g.receipted:
            self.receipts.add(bench, boot, seq)
            g.touched.add(bench)
        gen = self.generation
        for item in batch:
            if item.qos > 0 and item.generation == gen:
                self.client.ack(item.mid, item.qos)
        for bench in g.touched:
            if self.receipts.has_pending(bench):
                self.receipt_dirty.add(bench)
        self._publish_receipts(now)
        for c in g.changes:
            self._log_change(c)
        for bench, reason, detail in g.rejects:
            self._log_reject(bench, reason, detail, now)
        self.forwarder.wake()

    def _log_reject(self, bench: str, reason: str, detail: str, now: float) -> None:
        """At most once a REJECT_LOG_INTERVAL_S per bench and reason."""
        key = (bench, reason)
        if now - self.reject_logged.get(key, 0) < REJECT_LOG_INTERVAL_S:
            return
        self.reject_logged[key] = now
        if len(self.reject_logged) > 10_000:
            self.reject_logged.clear()
        text = CLOCK_REJECTED if reason in P.CLOCK_REASONS else "rejected a message from %s: %s %s"
        log.warning(text, printable(bench, 80), reason, printable(detail))

    def _derive(self, msg: Any, rid: int) -> None:
        """Update the per-minute vote counts and the local day's sums (same transaction)."""
        st = self.store
        b = self.health.get(msg.bench)
        if isinstance(msg, P.Telemetry):
            b.period = int(msg.period)
            b.soc = float(msg.batt.soc)
            if b.power != msg.power and msg.power == "critical":
                self.bench_log.log(
                    logging.WARNING,
                    msg.bench,
                    "critical",
                    "%s: battery critical (SoC %.1f %%)",
                    msg.bench,
                    msg.batt.soc,
                )
            b.power = msg.power
            d = self._day(msg.bench, int(msg.ts))
            d[0] += msg.solar.wh
            d[1] += sum(p.wh for p in msg.ports)
            d[3] += msg.seat.occ
            d[4] += msg.touch.n
            if msg.touch.n and b.wet_since is not None:
                b.wet_since = None  # presses count again: the pads are dry
        elif isinstance(msg, P.Event):
            if msg.type == "session":
                self._day(msg.bench, int(msg.ts))[2] += 1
            elif msg.type == "boot":
                b.fw = msg.fw
                b.boot = int(msg.boot)
                b.safe = bool(msg.safe)
            elif msg.type in ("fault", "tamper"):
                if msg.type == "tamper":
                    b.tamper_at, b.tamper_kind = time.time(), msg.kind or ""
                elif msg.code == "touch_wet" and b.wet_since is None:
                    b.wet_since = min(float(msg.ts), time.time())
                self.bench_log.log(
                    logging.WARNING,
                    msg.bench,
                    msg.type,
                    "%s: %s %s %s",
                    msg.bench,
                    msg.type,
                    printable(msg.code or msg.kind or "", 64),
                    printable(msg.detail or ""),
                )
            elif msg.type == "power" and msg.to == "critical":
                self.bench_log.log(
                    logging.WARNING,
                    msg.bench,
                    "critical",
                    "%s: power state %s -> critical",
                    msg.bench,
                    msg.from_,
                )
        elif isinstance(msg, P.Vote):
            st.add_vote(msg.bench, msg.poll, msg.choice, int(msg.ts), rid)
            self._day(msg.bench, int(msg.ts))[5] += 1

    def _save_state(self) -> None:
        """Within the open transaction: the counters and the benches touched since last time.

        What was saved is forgotten only by :meth:`_saved`, once the transaction committed.
        """
        for bench in self.unsaved_benches:
            b = self.health.get(bench)
            self.store.save_bench(
                bench,
                online=int(b.online),
                sleeping=int(b.sleeping),
                until=b.until,
                last_seen=b.last_seen,
                period=b.period,
                boot=b.boot,
                fw=b.fw,
                soc=b.soc,
                power=b.power,
            )
        if self.unsaved_counts:
            self.store.bump(dict(self.unsaved_counts))

    def _saved(self, now: float) -> None:
        self.unsaved_benches = set()
        self.unsaved_counts = Counter()
        self.last_save = now

    def _day(self, bench: str, ts: int) -> list[float]:
        """This group's sums for a bench's local day (DAILY_SUMS order), added at commit."""
        key = (bench, local_day(ts))
        d = self.day_sums.get(key)
        if d is None:
            d = self.day_sums[key] = [0.0, 0.0, 0, 0, 0, 0]
        return d

    def _store_change(self, c: Change) -> None:
        b = self.health.get(c.bench)
        body = state_body(c.online, c.sleeping, b.boot, b.fw)
        # The point's time (docs/interfaces.md): an online Status's `ts`; the gateway's own for
        # other changes, which no bench clock stamps (Health._set keeps them in order).
        t = c.ts
        body = body[:-1] + f',"t":{t:.3f}}}'.encode()
        self.store.insert_message(c.bench, None, None, "state", int(t), c.t, body)
        self.store.add_state(c.bench, c.t, c.online or c.sleeping)

    def _log_change(self, c: Change) -> None:
        state = "online" if c.online else ("sleeping" if c.sleeping else "offline")
        self.bench_log.log(logging.INFO, c.bench, "state", "%s is %s (%s)", c.bench, state, c.why)

    def _publish_receipts(self, now: float) -> None:
        if not self.connected.is_set():
            return
        for bench in list(self.receipt_dirty):
            if now - self.receipt_sent.get(bench, 0) < RECEIPT_MIN_INTERVAL_S:
                continue
            self.receipt_sent[bench] = now
            self.receipt_dirty.discard(bench)
            self.publish(P.topic(self.m, bench, "receipt"), self.receipts.payload(bench))
