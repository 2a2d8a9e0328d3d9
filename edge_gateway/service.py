"""The gateway service: MQTT in, SQLite store, receipts, health, sinks out.

``on_message`` only hands a message to the writer thread. The writer validates a group of
messages, commits them in one SQLite transaction (WAL, synchronous=FULL), and only then
acknowledges them to the broker in the order received (paho's manual acks). So a message the
broker has seen acknowledged is on the gateway's disk, and a crash before the commit makes the
broker deliver it again (persistent session), where the ``(bench, boot, seq)`` identity turns
it into a counted duplicate.

The writer's side (validate, commit, acknowledge, hold while the disk is full) is
:mod:`edge_gateway.ingest`; this module connects, starts and stops, and keeps the upkeep.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt

from edge_gateway import __version__, broker
from edge_gateway import protocol as P
from edge_gateway.alerts import Alerts
from edge_gateway.clock import clock_synchronised
from edge_gateway.config import Config
from edge_gateway.forwarder import Forwarder, SinkView
from edge_gateway.health import Health
from edge_gateway.ingest import (
    RECEIPT_MIN_INTERVAL_S,
    REJECT_LOG_INTERVAL_S,
    Incoming,
    Ingest,
)
from edge_gateway.loglimit import BurstLog
from edge_gateway.polls import PollSync
from edge_gateway.receipts import Receipts
from edge_gateway.serve import Listen, serve_metrics, serve_ota
from edge_gateway.store import Store
from edge_gateway.text import printable

log = logging.getLogger("edge_gateway")

EXPECTED_LOG_INTERVAL_S = 3600.0
# Messages taken from the broker and not yet stored. QoS 1 deliveries are bounded by the
# broker's in-flight window (max_inflight_messages); this bounds the rest.
QUEUE_MAX = 5000
CLOCK_LOG_INTERVAL_S = 60.0


class Gateway(Ingest):
    """One municipality's gateway. :meth:`start`, then :meth:`stop` (flushes)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.m = cfg.municipality
        self.store = Store(cfg.spool.path)
        self.queue: queue.Queue[Incoming | None] = queue.Queue(QUEUE_MAX)
        self.counts: Counter[str] = Counter(self.store.counters())
        self.health = Health(cfg.health.offline_after_s, self.store.benches())
        self.health.resume(self.store.last_changes())
        self.receipts = Receipts(self.store.receipt_ranges())
        self.receipt_dirty: set[str] = set()
        self.receipt_sent: dict[str, float] = {}
        self.reject_logged: dict[tuple[str, str], float] = {}
        self.bench_log = BurstLog(log)
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
        self._open_log()  # [spool] batch_s: what a previous run left is stored first
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

    def _housekeeping(self, now: float) -> None:
        self._publish_receipts(now)
        self._merge_qos0(now)
        if (
            self.unsaved_counts or self.unsaved_benches
        ) and now - self.last_save >= self.save_every():
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
            self.extras.append(serve_ota(self.cfg.ota.dir, Listen(self.cfg.ota.port)))
            log.info("serving OTA bundles from %s on port %d", self.cfg.ota.dir, self.cfg.ota.port)
        if self.cfg.alerts is not None:
            self.alerts = Alerts(self, self.cfg.alerts)
            self.alerts.start()
            self.extras.append(self.alerts)
        if self.cfg.metrics:
            self.extras.append(serve_metrics(self, Listen(self.cfg.metrics.port)))
            log.info("metrics on port %d at /metrics", self.cfg.metrics.port)
        sinks = ", ".join(s.name for s in self.sinks) or "none"
        log.info("gateway %s started: store %s, sinks: %s", self.m, self.cfg.spool.path, sinks)

    def _connect(self) -> None:
        self.clock_ok.set()
        self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, keepalive=30)
        self.client.loop_start()

    def _wait_for_clock(self) -> None:
        """Take nothing until the kernel says the clock is synchronised (../shared/DESIGN.md, principle 7)."""
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
