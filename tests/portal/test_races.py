"""Requests that race: the same write sent at once on several connections (a gateway's retry
while its first try is still being answered, two operators' scripts) is answered as one after
the other would be, never a 500. On SQLite the write lock serialises them anyway; on PostgreSQL
each check-then-write must hold. Many rounds of a few at once: without the rule, some round
collides."""

from __future__ import annotations

import concurrent.futures
import time
from collections import Counter
from typing import Any

import httpx

from portal import registry
from testkit.polls import protocol_poll

ROUNDS = 15
AT_ONCE = 8


def at_once(portal: Any, method: str, path: str, body: Any, token: str) -> Counter[int]:
    """The status codes of AT_ONCE clients sending the same request at the same moment."""
    clients = [httpx.Client(base_url=portal.url, timeout=30) for _ in range(AT_ONCE)]

    def send(client: httpx.Client) -> int:
        return client.request(method, path, json=body, headers=portal.auth(token)).status_code

    try:
        with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
            return Counter(pool.map(send, clients))
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
