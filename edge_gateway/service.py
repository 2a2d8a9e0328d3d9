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
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_gateway import protocol as P
from edge_gateway.config import Config
from edge_gateway.forwarder import Forwarder, SinkView
from edge_gateway.health import Change, Health
from edge_gateway.receipts import Receipts
from edge_gateway.store import Store, local_day, state_body

if TYPE_CHECKING:
    from edge_gateway.polls import PollSync

log = logging.getLogger("edge_gateway")

GROUP_MAX = 2000
RECEIPT_MIN_INTERVAL_S = 1.0
SAVE_EVERY_S = 30.0
REJECT_LOG_INTERVAL_S = 60.0
EXPECTED_LOG_INTERVAL_S = 3600.0


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
        self.queue: queue.Queue[Incoming | None] = queue.Queue()
        self.counts: Counter[str] = Counter(self.store.counters())
        self.health = Health(cfg.health.offline_after_s, self.store.benches())
        self.receipts = Receipts(self.store.receipt_ranges())
        self.receipt_dirty: set[str] = set()
        self.receipt_sent: dict[str, float] = {}
        self.reject_logged: dict[tuple[str, str], float] = {}
        self.generation = 0
        self.poll_sync: PollSync | None = None
        self.poll_topic = P.topic(self.m, None, "poll")
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

    @property
    def sinks(self) -> list[SinkView]:
        """Each sink's state as the forwarder process last reported it."""
        return self.forwarder.views

    # ------------------------------------------------------------------ MQTT

    def _make_client(self) -> mqtt.Client:
        c = self.cfg.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=c.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.manual_ack_set(True)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        if c.username:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            client.tls_set(
                ca_certs=c.ca_file,
                certfile=c.certfile,
                keyfile=c.keyfile,
                cert_reqs=ssl.CERT_REQUIRED,
            )
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

    def _where(self) -> tuple[str, int]:
        return self.cfg.mqtt.host, self.cfg.mqtt.port

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self.closing:
            return  # not acknowledged: the broker keeps it for the next session
        if msg.topic == self.poll_topic:  # watched at QoS 0 (the session may keep the
            if self.poll_sync is not None:  # subscription after [portal] is removed)
                self.poll_sync.seen(bytes(msg.payload))
            return
        self.queue.put(
            Incoming(self.generation, msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.time())
        )

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    # ------------------------------------------------------------------ writer

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            batch: list[Incoming] = []
            try:
                first = self.queue.get(timeout=0.1)
                if first is None:
                    stop = True
                else:
                    batch.append(first)
                while len(batch) < GROUP_MAX and not stop:
                    item = self.queue.get_nowait()
                    if item is None:
                        stop = True
                    else:
                        batch.append(item)
            except queue.Empty:
                pass
            now = time.time()
            try:
                if batch:
                    self._commit_group(batch, now)
                self._housekeeping(now)
            except Exception:  # noqa: BLE001
                # Not acknowledged, so the broker still holds the group; but it redelivers only
                # on a new session, so stop: the service manager restarts us (see the unit).
                log.exception("cannot store a group of %d messages; stopping", len(batch))
                self.fatal.set()
                return

    def _identity(self, kind: str, bench: str, payload: bytes) -> tuple[int, int] | None:
        """(boot, seq) of a rejected record when they are readable, for its receipt."""
        if kind not in P.RECORD_KINDS:
            return None
        try:
            obj = msgspec.json.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        if not isinstance(obj, dict) or obj.get("bench") != bench:
            return None
        boot, seq = obj.get("boot"), obj.get("seq")
        if type(boot) is not int or type(seq) is not int or boot < 1 or seq < 1:
            return None
        if boot > 2**53 or seq > 2**53:
            return None
        return boot, seq

    def _commit_group(self, batch: list[Incoming], now: float) -> None:
        st = self.store
        counts: Counter[str] = Counter()
        touched: set[str] = set()
        changes: list[Change] = []
        rejects: list[tuple[str, str, str]] = []
        self.day_sums = {}
        st.begin()
        try:
            for item in batch:
                counts["received"] += 1
                try:
                    msg = P.validate(item.topic, item.payload, now, self.m)
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
                    if ident is not None:
                        st.insert_message(bench, ident[0], ident[1], "rejected", 0, item.t, None)
                        self.receipts.add(bench, ident[0], ident[1])
                        touched.add(bench)
                    rejects.append((bench or item.topic[:60], exc.reason, exc.detail))
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
                self.receipts.add(bench, boot, seq)
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
            self.unsaved_benches |= touched
            # Counters and bench state are saved at most every SAVE_EVERY_S (and with every
            # health change): fewer pages per commit on an SD card. A crash loses at most
            # that much of the counters; the messages themselves are in every commit.
            if changes or now - self.last_save >= SAVE_EVERY_S:
                self._save_state(now)
            st.commit()
        except Exception:
            st.rollback()
            raise
        self.commits += 1
        self.counts.update(counts)
        # Durable now: acknowledge in the order received, on the connection they came on.
        gen = self.generation
        for item in batch:
            if item.qos > 0 and item.generation == gen:
                self.client.ack(item.mid, item.qos)
        for bench in touched:
            if bench in self.receipts.ranges:
                self.receipt_dirty.add(bench)
        self._publish_receipts(now)
        for c in changes:
            self._log_change(c)
        for bench, reason, detail in rejects:
            key = (bench, reason)
            if now - self.reject_logged.get(key, 0) >= REJECT_LOG_INTERVAL_S:
                self.reject_logged[key] = now
                log.warning("rejected a message from %s: %s %s", bench, reason, detail[:120])
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
        elif isinstance(msg, P.Event):
            if msg.type == "session":
                self._day(msg.bench, int(msg.ts))[2] += 1
            elif msg.type == "boot":
                b.fw = msg.fw
                b.boot = int(msg.boot)
            elif msg.type in ("fault", "tamper"):
                log.warning(
                    "%s: %s %s %s",
                    msg.bench,
                    msg.type,
                    msg.code or msg.kind or "",
                    (msg.detail or "")[:120],
                )
            elif msg.type == "power" and msg.to == "critical":
                log.warning("%s: power state %s -> critical", msg.bench, msg.from_)
        elif isinstance(msg, P.Vote):
            st.add_vote(msg.bench, msg.poll, msg.choice, int(msg.ts), rid)
            self._day(msg.bench, int(msg.ts))[5] += 1

    def _save_state(self, now: float) -> None:
        """Within the open transaction: the counters and the benches touched since last time."""
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
        # The point's time (INTERFACES.md): an online Status's `ts`; the gateway's own for
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
        if (self.unsaved_counts or self.unsaved_benches) and now - self.last_save >= SAVE_EVERY_S:
            self.store.begin()
            try:
                self._save_state(now)
                self.store.commit()
            except Exception:
                self.store.rollback()
                raise
        changes = self.health.tick(now)
        if changes:
            self.store.begin()
            try:
                for c in changes:
                    self._store_change(c)
                    b = self.health.get(c.bench)
                    self.store.save_bench(
                        c.bench, online=int(b.online), sleeping=int(b.sleeping), changed=c.t
                    )
                self.store.commit()
            except Exception:
                self.store.rollback()
                raise
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

    def missing(self) -> list[str]:
        return [b for b in self.cfg.health.expected if b not in self.health.benches]

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        self.forwarder.start()
        self.last_prune = time.time() - 3600 + 60  # first upkeep a minute after start
        self.writer.start()
        if self.cfg.portal:  # made before connecting: the connection subscribes for it
            from edge_gateway.polls import PollSync

            self.poll_sync = PollSync(self, self.cfg.portal)
        self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, keepalive=30)
        self.client.loop_start()
        if self.poll_sync is not None:
            self.poll_sync.start()
            self.extras.append(self.poll_sync)
        if self.cfg.ota:
            from edge_gateway.serve import serve_ota

            self.extras.append(serve_ota(self.cfg.ota.dir, self.cfg.ota.port))
            log.info("serving OTA bundles from %s on port %d", self.cfg.ota.dir, self.cfg.ota.port)
        if self.cfg.metrics:
            from edge_gateway.serve import serve_metrics

            self.extras.append(serve_metrics(self, self.cfg.metrics.port))
            log.info("metrics on port %d at /metrics", self.cfg.metrics.port)
        sinks = ", ".join(s.name for s in self.sinks) or "none"
        log.info("gateway %s started: store %s, sinks: %s", self.m, self.cfg.spool.path, sinks)

    def stop(self, flush_s: float = 10.0) -> None:
        """Stop taking messages, store and acknowledge what was taken, flush sinks, exit."""
        self.closing = True
        for e in self.extras:
            e.stop()
        self.queue.put(None)
        self.writer.join(timeout=30)
        if not self.writer.is_alive() and (self.unsaved_counts or self.unsaved_benches):
            self.store.begin()
            try:
                self._save_state(time.time())
                self.store.commit()
            except Exception:
                self.store.rollback()
                log.exception("could not save the counters at shutdown")
        self._publish_receipts(time.time() + RECEIPT_MIN_INTERVAL_S)
        self.forwarder.stop(time.time() + flush_s)
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        depth, _ = self.store.depth_and_lag([s.name for s in self.sinks], time.time())
        log.info(
            "gateway %s stopped after %d store commits; %d rows wait in the store for forwarding",
            self.m,
            self.commits,
            depth,
        )
