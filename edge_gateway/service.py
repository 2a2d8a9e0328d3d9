"""The gateway service: MQTT in, SQLite store, receipts, health, sinks out.

``on_message`` only hands a message to the writer thread. The writer validates a group of
messages, commits them in one SQLite transaction (WAL, synchronous=FULL), and only then
acknowledges them to the broker in the order received (paho's manual acks). So a message the
broker has seen acknowledged is on the gateway's disk, and a crash before the commit makes the
broker deliver it again (persistent session), where the ``(bench, boot, seq)`` identity turns
it into a counted duplicate.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgspec
import paho.mqtt.client as mqtt

from edge_gateway import __version__, broker
from edge_gateway import protocol as P
from edge_gateway.alerts import Alerts
from edge_gateway.clock import clock_synchronised
from edge_gateway.config import Config
from edge_gateway.forwarder import Forwarder, SinkView
from edge_gateway.health import Change, Health
from edge_gateway.polls import PollSync
from edge_gateway.receipts import Receipts
from edge_gateway.serve import serve_metrics, serve_ota
from edge_gateway.store import Store, local_day, state_body
from edge_gateway.text import printable

log = logging.getLogger("edge_gateway")

GROUP_MAX = 2000
RECEIPT_MIN_INTERVAL_S = 1.0
SAVE_EVERY_S = 30.0
REJECT_LOG_INTERVAL_S = 60.0
EXPECTED_LOG_INTERVAL_S = 3600.0
# Messages taken from the broker and not yet stored. QoS 1 deliveries are bounded by the
# broker's in-flight window (max_inflight_messages); this bounds the rest.
QUEUE_MAX = 5000
STORE_RETRY_S = 5.0  # while the store cannot write (full disk): how often to try again
STORE_LOG_INTERVAL_S = 60.0
CLOCK_LOG_INTERVAL_S = 60.0


class StoreUnavailable(Exception):
    """The store cannot write now (full disk, I/O error): hold the messages, retry later."""


def store_unavailable(exc: BaseException) -> bool:
    """True for a store error that no single message caused (so retrying later can help)."""
    if isinstance(exc, sqlite3.OperationalError):
        return True
    if isinstance(exc, OSError):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.InterfaceError | sqlite3.ProgrammingError
    )


def disk_full(exc: BaseException) -> bool:
    if getattr(exc, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
        return True
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        return True
    return "full" in str(exc).lower()


@dataclass
class Incoming:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    t: float


class Gateway:
    """One municipality's gateway. :meth:`start`, then :meth:`stop` (flushes)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.m = cfg.municipality
        self.store = Store(cfg.spool.path)
        self.queue: queue.Queue[Incoming | None] = queue.Queue(QUEUE_MAX)
        self.counts: Counter[str] = Counter(self.store.counters())
        self.health = Health(cfg.health.offline_after_s, self.store.benches())
        self.receipts = Receipts(self.store.receipt_ranges())
        self.receipt_dirty: set[str] = set()
        self.receipt_sent: dict[str, float] = {}
        self.reject_logged: dict[tuple[str, str], float] = {}
        self.generation = 0
        self.poll_sync: PollSync | None = None
        self.poll_topic = P.topic(self.m, None, "poll")
        self.gateway_topic = P.topic(self.m, None, "gateway")
        self.connected = threading.Event()
        self.fatal = threading.Event()  # the store failed: the process must restart
        self.closing = False
        # Attributes set on a sink in the forwarder once it is built, by sink name (tests).
        self.sink_options: dict[str, dict[str, Any]] = {}
        self.forwarder = Forwarder(cfg, self.sink_options)
        self.started = time.time()
        self.expected_logged = 0.0
        self.last_prune = 0.0
        self.commits = 0
        self.day_sums: dict[tuple[str, str], list[float]] = {}
        self.unsaved_counts: Counter[str] = Counter()
        self.unsaved_benches: set[str] = set()
        self.last_save = 0.0
        self.client = self._make_client()
        self.writer = threading.Thread(target=self._write_loop, name="writer", daemon=True)
        self.extras: list[Any] = []  # poll sync, HTTP servers: objects with stop()
        # The store's state: "ok", or why it cannot write ("disk_full", "error"); held is the
        # group waiting for it, not acknowledged (the broker keeps it).
        self.store_state = "ok"
        self.store_logged = 0.0
        self.held: list[Incoming] = []
        self.qos0_dropped = 0  # counted in the network thread, merged by the writer
        self.qos0_logged = 0.0
        # The system clock: until it is synchronised (or [clock] require_sync = false) the
        # gateway does not connect, so it takes nothing a wrong clock would misjudge.
        self.clock_synced = clock_synchronised
        self.clock_ok = threading.Event()
        self.clock_thread: threading.Thread | None = None
        self.alerts: Alerts | None = None  # with an [alerts] section

    @property
    def sinks(self) -> list[SinkView]:
        """Each sink's state as the forwarder process last reported it."""
        return self.forwarder.views

    # ------------------------------------------------------------------ MQTT

    def _make_client(self) -> mqtt.Client:
        c = self.cfg.mqtt
        client = broker.client(
            c, c.client_id, clean_session=False, username=c.username, password=c.password
        )
        client.manual_ack_set(True)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.will_set(self.gateway_topic, self._presence("offline"), qos=1, retain=True)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the connection: %s", *self._where(), reason)
            return
        self.generation += 1
        subs = [(P.topic(self.m, "+", kind), 1) for kind in P.BENCH_KINDS]
        if self.poll_sync is not None:  # QoS 0: watched, never stored or acknowledged
            subs.append((self.poll_topic, 0))
        client.subscribe(subs)
        client.publish(self.gateway_topic, self._presence("online"), qos=1, retain=True)
        self.connected.set()
        log.info(
            "connected to %s:%s as %s (session present: %s)",
            *self._where(),
            self.cfg.mqtt.client_id,
            bool(getattr(flags, "session_present", False)),
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        if not self.closing:
            log.warning("lost the broker (%s); reconnecting", reason)

    def _presence(self, state: str) -> bytes:
        """The retained ``klupa/v1/{m}/gateway`` Status (docs/protocol.md); the will is the offline one."""
        return P.encode({"v": 1, "state": state, "ts": int(time.time()), "version": __version__})

    def _where(self) -> tuple[str, int]:
        return self.cfg.mqtt.host, self.cfg.mqtt.port

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self.closing:
            return  # not acknowledged: the broker keeps it for the next session
        if msg.topic == self.poll_topic:  # watched at QoS 0 (the session may keep the
            if self.poll_sync is not None:  # subscription after [portal] is removed)
                self.poll_sync.seen(bytes(msg.payload))
            return
        if msg.qos == 0:
            # Every bench record is QoS 1 (docs/protocol.md). A QoS 0 one bypasses the broker's
            # in-flight window, so a flood of them would queue without bound: a counted reject.
            self.qos0_dropped += 1
            return
        # Bounded: when the writer falls behind, this waits, and the broker (whose in-flight
        # window is full of unacknowledged messages) holds the rest.
        item = Incoming(
            self.generation, msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.time()
        )
        while not self.closing:
            try:
                self.queue.put(item, timeout=1.0)
                return
            except queue.Full:
                continue

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    # ------------------------------------------------------------------ writer

    def _write_loop(self) -> None:
        stop = False
        retry_at = 0.0
        while True:
            batch: list[Incoming] = []
            if self.held:  # the store could not write: try the same group again, in order
                if stop or self.closing:
                    break  # not acknowledged: the broker keeps it for the next session
                if time.time() < retry_at:
                    time.sleep(0.2)
                    try:
                        self._housekeeping(time.time())
                    except Exception as exc:  # noqa: BLE001
                        self._store_failed(exc, time.time(), "upkeep")
                    continue
                batch = self.held
            else:
                if stop:
                    break
                batch, stop = self._take(GROUP_MAX)
            now = time.time()
            if batch:
                self.held = self._store(batch, now)
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
        """Validate one message; anything that goes wrong doing so is a ProtocolError."""
        try:
            return P.validate(item.topic, item.payload, now, self.m)
        except P.ProtocolError:
            raise
        except Exception as exc:  # noqa: BLE001 - no payload may stop the gateway
            raise P.ProtocolError("internal", f"{type(exc).__name__} while judging") from None

    def _commit_group(self, batch: list[Incoming], now: float) -> None:
        st = self.store
        counts: Counter[str] = Counter()
        touched: set[str] = set()
        changes: list[Change] = []
        rejects: list[tuple[str, str, str]] = []
        receipted: list[tuple[str, int, int]] = []
        self.day_sums = {}
        saved = added = False
        try:
            with st.transaction():
                for item in batch:
                    counts["received"] += 1
                    try:
                        msg = self._judge(item, now)
                    except P.ProtocolError as exc:
                        counts["rejected"] += 1
                        counts[f"rejected:{exc.reason}"] += 1
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
                            counts["clock"] += 1
                            ident = None
                        if ident is not None:
                            st.insert_message(
                                bench, ident[0], ident[1], "rejected", 0, item.t, None
                            )
                            receipted.append((bench, ident[0], ident[1]))
                        rejects.append((bench or item.topic, exc.reason, exc.detail))
                        continue
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
                        counts["status"] += 1
                        if c:
                            changes.append(c)
                        touched.add(msg.bench)
                        self.receipt_dirty.discard(msg.bench)
                        continue
                    kind = P.kind_of(msg)
                    bench, boot, seq, ts = msg.bench, int(msg.boot), int(msg.seq), int(msg.ts)
                    rid = st.insert_message(bench, boot, seq, kind, ts, item.t, item.payload)
                    receipted.append((bench, boot, seq))
                    touched.add(bench)
                    c = self.health.on_record(bench, item.t)
                    if c:
                        changes.append(c)
                    if rid is None:
                        counts["duplicates"] += 1
                        continue
                    counts["accepted"] += 1
                    self._derive(msg, rid)
                if self.day_sums:
                    st.add_daily(self.day_sums)
                for c in changes:
                    self._store_change(c)
                counts["commits"] += 1
                self.unsaved_counts.update(counts)
                added = True
                self.unsaved_benches |= touched
                # Counters and bench state are saved at most every SAVE_EVERY_S (and with every
                # health change): fewer pages per commit on an SD card. A crash loses at most
                # that much of the counters; the messages themselves are in every commit.
                if changes or now - self.last_save >= SAVE_EVERY_S:
                    self._save_state()
                    saved = True
        except BaseException:
            if added:
                self.unsaved_counts.subtract(counts)
                self.unsaved_counts = +self.unsaved_counts
            raise
        if saved:
            self._saved(now)
        self.commits += 1
        self.counts.update(counts)
        # Durable now: receipts may cover it, and it is acknowledged in the order received,
        # on the connection it came on.
        for bench, boot, seq in receipted:
            self.receipts.add(bench, boot, seq)
            touched.add(bench)
        gen = self.generation
        for item in batch:
            if item.qos > 0 and item.generation == gen:
                self.client.ack(item.mid, item.qos)
        for bench in touched:
            if self.receipts.has_pending(bench):
                self.receipt_dirty.add(bench)
        self._publish_receipts(now)
        for c in changes:
            self._log_change(c)
        for bench, reason, detail in rejects:
            key = (bench, reason)
            if now - self.reject_logged.get(key, 0) >= REJECT_LOG_INTERVAL_S:
                self.reject_logged[key] = now
                if len(self.reject_logged) > 10_000:
                    self.reject_logged.clear()
                if reason in P.CLOCK_REASONS:
                    log.warning(
                        "clock: a record from %s is %s (%s) by this gateway's clock; "
                        "quarantined and not receipted, so the bench sends it again: check "
                        "the bench's and this machine's time",
                        printable(bench, 80),
                        reason,
                        printable(detail),
                    )
                else:
                    log.warning(
                        "rejected a message from %s: %s %s",
                        printable(bench, 80),
                        reason,
                        printable(detail),
                    )
        self.forwarder.wake()

    def _derive(self, msg: Any, rid: int) -> None:
        """Update the per-minute vote counts and the local day's sums (same transaction)."""
        st = self.store
        b = self.health.get(msg.bench)
        if isinstance(msg, P.Telemetry):
            b.period = int(msg.period)
            b.soc = float(msg.batt.soc)
            if b.power != msg.power and msg.power == "critical":
                log.warning("%s: battery critical (SoC %.1f %%)", msg.bench, msg.batt.soc)
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
                log.warning(
                    "%s: %s %s %s",
                    msg.bench,
                    msg.type,
                    printable(msg.code or msg.kind or "", 64),
                    printable(msg.detail or ""),
                )
            elif msg.type == "power" and msg.to == "critical":
                log.warning("%s: power state %s -> critical", msg.bench, msg.from_)
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
        log.info("%s is %s (%s)", c.bench, state, c.why)

    def _publish_receipts(self, now: float) -> None:
        if not self.connected.is_set():
            return
        for bench in list(self.receipt_dirty):
            if now - self.receipt_sent.get(bench, 0) < RECEIPT_MIN_INTERVAL_S:
                continue
            self.receipt_sent[bench] = now
            self.receipt_dirty.discard(bench)
            self.publish(P.topic(self.m, bench, "receipt"), self.receipts.payload(bench))

    def _housekeeping(self, now: float) -> None:
        self._publish_receipts(now)
        self._merge_qos0(now)
        if (self.unsaved_counts or self.unsaved_benches) and now - self.last_save >= SAVE_EVERY_S:
            with self.store.transaction():
                self._save_state()
            self._saved(now)
        changes = self.health.tick(now)
        if changes:
            with self.store.transaction():
                for c in changes:
                    self._store_change(c)
                    b = self.health.get(c.bench)
                    self.store.save_bench(
                        c.bench, online=int(b.online), sleeping=int(b.sleeping), changed=c.t
                    )
            for c in changes:
                self._log_change(c)
            self.forwarder.wake()
        self.forwarder.check()
        grace = max(self.cfg.health.offline_after_s, 60)
        if (
            self.cfg.health.expected
            and now - self.started > grace
            and now - self.expected_logged > EXPECTED_LOG_INTERVAL_S
        ):
            self.expected_logged = now
            missing = self.missing()
            if missing:
                log.warning("expected benches never seen: %s", ", ".join(missing))
        if now - self.last_prune > 3600:
            self.last_prune = now
            n = self.store.prune(
                [s.name for s in self.sinks],
                self.cfg.spool.retention_days,
                self.cfg.spool.max_mb,
                now,
            )
            if n:
                log.info("store upkeep: pruned %d forwarded rows", n)

    def _merge_qos0(self, now: float) -> None:
        n, self.qos0_dropped = self.qos0_dropped, 0
        if not n:
            return
        counts = {"received": n, "rejected": n, "rejected:qos0": n}
        self.counts.update(counts)
        self.unsaved_counts.update(counts)
        if now - self.qos0_logged >= REJECT_LOG_INTERVAL_S:
            self.qos0_logged = now
            log.warning(
                "rejected %d QoS 0 messages (bench records are QoS 1; set upgrade_outgoing_qos "
                "in the broker, see docs/operations.md)",
                n,
            )

    def missing(self) -> list[str]:
        return [b for b in self.cfg.health.expected if b not in self.health.benches]

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        self.forwarder.start()
        self.last_prune = time.time() - 3600 + 60  # first upkeep a minute after start
        self.writer.start()
        if self.cfg.portal:  # made before connecting: the connection subscribes for it
            self.poll_sync = PollSync(self, self.cfg.portal)
        if not self.cfg.clock.require_sync:
            log.warning(
                "[clock] require_sync = false: taking messages without checking that this "
                "machine's clock is synchronised"
            )
            self._connect()
        elif self.clock_synced():
            self._connect()
        else:
            self.clock_thread = threading.Thread(
                target=self._wait_for_clock, name="clock", daemon=True
            )
            self.clock_thread.start()
        if self.poll_sync is not None:
            self.poll_sync.start()
            self.extras.append(self.poll_sync)
        if self.cfg.ota:
            self.extras.append(serve_ota(self.cfg.ota.dir, self.cfg.ota.port))
            log.info("serving OTA bundles from %s on port %d", self.cfg.ota.dir, self.cfg.ota.port)
        if self.cfg.alerts is not None:
            self.alerts = Alerts(self, self.cfg.alerts)
            self.alerts.start()
            self.extras.append(self.alerts)
        if self.cfg.metrics:
            self.extras.append(serve_metrics(self, self.cfg.metrics.port))
            log.info("metrics on port %d at /metrics", self.cfg.metrics.port)
        sinks = ", ".join(s.name for s in self.sinks) or "none"
        log.info("gateway %s started: store %s, sinks: %s", self.m, self.cfg.spool.path, sinks)

    def _connect(self) -> None:
        self.clock_ok.set()
        self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, keepalive=30)
        self.client.loop_start()

    def _wait_for_clock(self) -> None:
        """Take nothing until the kernel says the clock is synchronised (DESIGN.md principle 7)."""
        logged = 0.0
        while not self.closing:
            if self.clock_synced():
                log.info("the system clock is synchronised; connecting to the broker")
                self._connect()
                return
            now = time.monotonic()
            if now - logged >= CLOCK_LOG_INTERVAL_S:
                logged = now
                log.warning(
                    "waiting for the system clock to be synchronised (the kernel reports it "
                    "unsynchronised: is chrony or systemd-timesyncd running and reaching a "
                    "server?) before taking any message; the broker keeps them. Where no NTP "
                    "runs, set [clock] require_sync = false"
                )
            time.sleep(1.0)

    def stop(self, flush_s: float = 10.0) -> None:
        """Stop taking messages, store and acknowledge what was taken, flush sinks, exit."""
        self.closing = True
        for e in self.extras:
            e.stop()
        try:
            self.queue.put(None, timeout=5)
        except queue.Full:
            pass  # the writer is holding a group for the store; it sees `closing`
        self.writer.join(timeout=30)
        if not self.writer.is_alive() and (self.unsaved_counts or self.unsaved_benches):
            try:
                with self.store.transaction():
                    self._save_state()
            except Exception as exc:  # noqa: BLE001
                log.error("could not save the counters at shutdown: %s", printable(exc))
        self._publish_receipts(time.time() + RECEIPT_MIN_INTERVAL_S)
        self.forwarder.stop(time.time() + flush_s)
        if self.clock_ok.is_set():
            try:
                if self.connected.is_set():  # a clean stop: the retained Status says offline
                    info = self.client.publish(
                        self.gateway_topic, self._presence("offline"), qos=1, retain=True
                    )
                    info.wait_for_publish(2)
                self.client.disconnect()
            except (RuntimeError, ValueError) as exc:
                log.warning("could not say goodbye to the broker: %s", exc)
            finally:
                self.client.loop_stop()
        depth, _ = self.store.depth_and_lag([s.name for s in self.sinks], time.time())
        log.info(
            "gateway %s stopped after %d store commits; %d rows wait in the store for forwarding",
            self.m,
            self.commits,
            depth,
        )
