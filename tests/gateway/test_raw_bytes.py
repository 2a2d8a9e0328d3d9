"""Hypothesis over raw payload bytes (not mutations of valid messages) through the gateway's
own judging and storing: whatever arrives, the answer is a stored record, a Status, or a
counted reject with one of docs/protocol.md's reasons; the store stays writable and nothing raises.

The gateway runs here without a broker (its writer's `_store` is called directly, with
messages that need no acknowledgement); the broker path is tests/gateway/test_hostile.py.
KLUPA_HYPOTHESIS_EXAMPLES sets the number of examples (300 here; benchmarks/gateway_fuzz.py
runs 10,000).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_gateway import protocol as P
from edge_gateway.config import load
from edge_gateway.service import Gateway, Incoming
from testkit.gateway import dumps, telemetry, write_config

EXAMPLES = int(os.environ.get("KLUPA_HYPOTHESIS_EXAMPLES", "300"))
KINDS = ("telemetry", "event", "vote", "status", "cmd/ack")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    d = tmp_path_factory.mktemp("rawbytes")
    gw = Gateway(load(write_config(d / "gw.toml", "mostar", 1, d / "store.sqlite")))
    yield gw
    gw.store.close()


GOOD = dumps(telemetry("mostar-01", 1, 1, int(time.time())))
topics = st.one_of(
    st.sampled_from([f"klupa/v1/mostar/mostar-01/{k}" for k in KINDS]),
    st.text(max_size=80).map(lambda t: "klupa/v1/mostar/" + t),
    st.binary(max_size=60).map(lambda b: b.decode("utf-8", "replace")),
)
payloads = st.one_of(
    st.binary(max_size=3000),
    # bytes spliced into a valid message: the decoder gets far before it meets them
    st.tuples(st.integers(0, len(GOOD)), st.binary(max_size=40)).map(
        lambda t: GOOD[: t[0]] + t[1] + GOOD[t[0] :]
    ),
    st.tuples(st.sampled_from(b"[{"), st.integers(1, 1500)).map(lambda t: bytes([t[0]]) * t[1]),
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(topic=topics, payload=payloads, qos=st.sampled_from([1, 2]))
def test_any_bytes_are_stored_or_a_counted_reject(
    gateway: Gateway, topic: str, payload: bytes, qos: int
) -> None:
    before = dict(gateway.counts)
    # generation -1: a message of an earlier connection, so nothing is acknowledged
    left = gateway._store([Incoming(-1, 1, qos, topic, payload, time.time())], time.time())
    assert left == [] and gateway.store_state == "ok"
    delta = {k: v - before.get(k, 0) for k, v in gateway.counts.items() if v != before.get(k, 0)}
    assert delta["received"] == 1
    outcomes = {k for k in delta if k in ("accepted", "duplicates", "rejected", "status")}
    assert len(outcomes) == 1, delta
    if "rejected" in delta:
        reasons = [k.split(":", 1)[1] for k in delta if k.startswith("rejected:")]
        assert len(reasons) == 1 and reasons[0] in P.REASONS, delta
        assert reasons[0] not in ("internal", "unstorable"), (topic, payload[:200])
