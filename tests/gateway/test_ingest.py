"""Durable ingest through a real Mosquitto: stored once, acknowledged, receipted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from edge_gateway.service import Gateway
from edge_gateway.store import Store
from klupa.services import Broker
from testkit.gateway import Publisher, telemetry, topic_of, vote, wait_until


def count(gw: Gateway, name: str) -> int:
    return int(gw.counts.get(name, 0))


def test_messages_are_stored_once_and_a_duplicate_is_counted(
    mosquitto: Broker, gateway_factory: Callable[..., Gateway]
) -> None:
    gw = gateway_factory(mosquitto.port)
    pub = Publisher(mosquitto.host, mosquitto.port)
    now = int(time.time())
    for seq in range(1, 11):
        pub.publish(
            topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 17, seq, now - 600 + seq)
        )
    pub.publish(topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 17, 5, now - 595))
    pub.publish(topic_of("mostar-01", "vote"), vote("mostar-01", 17, 11, now, "mostar-park", "yes"))
    pub.wait_published()
    wait_until(lambda: count(gw, "received") == 12, what="12 messages received")
    assert count(gw, "accepted") == 11
    assert count(gw, "duplicates") == 1
    st = Store(gw.cfg.spool.path, readonly=True)
    assert (
        st.conn.execute("SELECT count(*) FROM messages WHERE seq IS NOT NULL").fetchone()[0] == 11
    )
    pub.close()


def test_receipt_covers_what_is_stored(
    mosquitto: Broker, gateway_factory: Callable[..., Gateway]
) -> None:
    gw = gateway_factory(mosquitto.port)
    pub = Publisher(mosquitto.host, mosquitto.port)
    pub.subscribe(topic_of("mostar-01", "receipt"))
    now = int(time.time())
    for seq in [1, 2, 3, 5, 6]:
        pub.publish(topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 17, seq, now - 100))
    pub.wait_published()

    def receipt() -> dict | None:
        with pub.lock:
            msgs = [json.loads(p) for t, p, _ in pub.received if t.endswith("/receipt")]
        return msgs[-1] if msgs and msgs[-1]["boots"].get("17") == [[1, 3], [5, 6]] else None

    assert wait_until(receipt, 3, what="receipt")["v"] == 1
    assert gw.counts["accepted"] == 5
    pub.close()
