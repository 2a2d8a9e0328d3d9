"""Requests that race: the same write sent at once on several connections (a gateway's retry
while its first try is still being answered, two operators' scripts) is answered as one after
the other would be, never a 500. On SQLite the write lock serialises them anyway; on PostgreSQL
each check-then-write must hold. Many rounds of a few at once: without the rule, some round
collides."""

from __future__ import annotations

import concurrent.futures
import random
import time
from collections import Counter
from typing import Any

import httpx

from portal import registry
from testkit.polls import protocol_poll
from tests.portal.conftest import bench_day

ROUNDS = 15
AT_ONCE = 8


def at_once(portal: Any, method: str, path: str, body: Any, token: str) -> Counter[int]:
    """The status codes of AT_ONCE clients sending a request at the same moment: the same
    `body`, or each its own when `body` is a list of AT_ONCE bodies."""
    bodies = body if isinstance(body, list) else [body] * AT_ONCE
    clients = [httpx.Client(base_url=portal.url, timeout=30) for _ in range(AT_ONCE)]

    def send(client: httpx.Client, json: Any) -> int:
        return client.request(method, path, json=json, headers=portal.auth(token)).status_code

    try:
        with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
            return Counter(pool.map(send, clients, bodies))
    finally:
        for client in clients:
            client.close()


def test_a_new_benchs_state_sent_at_once_is_stored_not_a_500(any_portal: Any) -> None:
    portal = any_portal
    state = {"municipality": "zavidovici", "online": True, "soc": 50.0}
    codes: Counter[int] = Counter()
    for n in range(ROUNDS):
        bench = f"zavidovici-r{n:02d}"  # never reported: the first state inserts its row
        registry.add_bench(portal.engine, bench, "zavidovici")
        codes += at_once(
            portal, "PUT", f"/api/v1/benches/{bench}", state, portal.token("zavidovici")
        )
    assert codes == {200: ROUNDS * AT_ONCE}


def test_one_new_poll_posted_at_once_is_one_201_and_409s_not_a_500(any_portal: Any) -> None:
    portal = any_portal
    now = int(time.time())
    codes: Counter[int] = Counter()
    for n in range(ROUNDS):
        poll_id = f"race-poll-{n}-{now % 100000}"
        body = protocol_poll(poll_id, now, now + 3600, municipalities=["zavidovici"])
        codes += at_once(portal, "POST", "/api/v1/polls", body, portal.admin)
    assert codes == {201: ROUNDS, 409: ROUNDS * (AT_ONCE - 1)}


def test_overlapping_bench_days_in_other_orders_at_once_are_stored_not_a_500(
    any_portal: Any,
) -> None:
    """Batches naming the same days in other orders (a gateway's retry beside its next batch,
    two sends after an outage): on PostgreSQL each upsert locks rows as it goes, so two of them
    in crossed orders deadlocked and one was a 500."""
    portal = any_portal
    days = [
        bench_day(f"trebinje-0{b}", f"2026-10-{d:02d}") for b in range(1, 10) for d in range(1, 11)
    ]
    codes: Counter[int] = Counter()
    for n in range(ROUNDS):
        batches = [random.Random(n * AT_ONCE + k).sample(days, len(days)) for k in range(AT_ONCE)]
        codes += at_once(
            portal,
            "PUT",
            "/api/v1/bench-days",
            [{"days": b} for b in batches],
            portal.token("trebinje"),
        )
    assert codes == {200: ROUNDS * AT_ONCE}
