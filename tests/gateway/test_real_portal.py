"""The gateway against the real portal (`klupa portal serve`): polls out, votes and state in."""

from __future__ import annotations

import json
import signal
import sqlite3
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.service import Gateway
from edge_gateway.store import Store
from klupa.services import Broker, free_port, serve_portal, stop_process
from testkit.gateway import Publisher, one_day_now, telemetry, topic_of, vote, wait_until
from testkit.polls import protocol_poll


class RealPortal:
    def __init__(self, workdir: Path) -> None:
        from portal.db import open_database
        from portal.registry import add_bench
        from portal.tokens import create_token

        self.db = str(workdir / "portal.sqlite")
        engine = open_database(self.db)
        self.admin = create_token(engine, admin=True)
        self.token = create_token(engine, "mostar")
        for bench in ("mostar-01", "mostar-02"):
            add_bench(engine, bench, "mostar")
        engine.dispose()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = serve_portal(self.db, self.port, workdir / "portal.log")

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        req = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.admin}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")


@pytest.fixture
def real_portal(tmp_path: Path) -> Iterator[RealPortal]:
    pytest.importorskip("portal.db")
    p = RealPortal(tmp_path)
    yield p
    stop_process(p.proc, signal.SIGTERM)


def test_polls_votes_and_bench_state_through_the_real_portal(
    mosquitto: Broker, real_portal: RealPortal, gateway_factory: Callable[..., Gateway]
) -> None:
    now = one_day_now(before=120, after=10)  # the records' daily row is one row
    poll = {
        "v": 1,
        "id": "mostar-gateway-test",
        "opens": now - 3600,
        "closes": now + 86400,
        "question": {"bs": "Da li želite više rasvjete u parku?"},
        "options": [{"id": "yes", "label": {"bs": "Da"}}, {"id": "no", "label": {"bs": "Ne"}}],
        "municipalities": ["mostar"],
    }
    real_portal.call("POST", "/api/v1/polls", poll)
    gw = gateway_factory(
        mosquitto.port,
        f'[portal]\nurl = "{real_portal.url}"\ntoken = "{real_portal.token}"\npoll_sync_s = 1\n',
    )
    bench = Publisher(mosquitto.host, mosquitto.port)
    bench.subscribe("klupa/v1/mostar/poll")
    wait_until(lambda: bench.received, 30, what="the poll")
    published = json.loads(bench.received[-1][1])
    assert published["id"] == "mostar-gateway-test" and published["options"][1]["id"] == "no"

    b = "mostar-01"
    bench.publish(topic_of(b, "status"), {"v": 1, "bench": b, "state": "online", "fw": "1.0.0"})
    bench.publish(topic_of(b, "telemetry"), telemetry(b, 3, 1, now - 120))
    for seq, choice in [(2, "yes"), (3, "yes"), (4, "no"), (5, "yes"), (6, "no"), (3, "yes")]:
        bench.publish(topic_of(b, "vote"), vote(b, 3, seq, now - 100 + seq, poll["id"], choice))
    bench.wait_published()

    def results() -> dict[str, Any] | None:
        r = real_portal.call("GET", f"/api/v1/polls/{poll['id']}/results")
        return r if r.get("total") == 5 else None

    r = wait_until(results, 30, what="5 votes in the portal's results")
    assert r["choices"] == {"yes": 3, "no": 2}
    assert r["benches"] == {b: {"yes": 3, "no": 2}}

    def portal_rows(sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{real_portal.db}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    # bench-days and bench state follow the votes in the same batch
    days = wait_until(
        lambda: portal_rows("SELECT bench, votes, charge_wh FROM bench_days WHERE votes = 5"), 30
    )
    assert days == [(b, 5, 0.076)]
    state = wait_until(
        lambda: portal_rows(
            "SELECT online, soc, power, fw FROM benches WHERE soc IS NOT NULL AND fw IS NOT NULL"
        ),
        30,
    )
    assert state == [(1, 78.5, "normal", "1.0.0")]
    # A version string longer than the portal keeps (40) is cut, not a reason for the portal
    # to refuse the bench's whole state.
    long_fw = "1.2.0-rc.1+build." + "0123456789abcdef" * 3
    c = "mostar-02"
    bench.publish(topic_of(c, "status"), {"v": 1, "bench": c, "state": "online", "fw": long_fw})
    bench.publish(topic_of(c, "telemetry"), telemetry(c, 4, 1, now - 60))
    bench.wait_published()
    row = wait_until(
        lambda: portal_rows(f"SELECT online, soc, fw FROM benches WHERE bench = '{c}' AND soc > 0"),
        30,
        what="the second bench's state in the portal",
    )
    assert row == [(1, 78.5, long_fw[:40])]
    assert gw.store.quarantine_counts() == {}
    wait_until(lambda: all(s.last_error == "" for s in gw.sinks), 5)
    # The gateway's heartbeat reached the portal: its benches' states hold.
    beat = wait_until(lambda: portal_rows("SELECT municipality, version, lag_s FROM gateways"), 10)
    assert beat[0][0] == "mostar" and beat[0][1] and beat[0][2] >= 0


def test_a_bench_the_portal_does_not_know_keeps_no_other_bench_s_votes_from_it(
    mosquitto: Broker, real_portal: RealPortal, gateway_factory: Callable[..., Gateway]
) -> None:
    """A bench the broker lets in but the portal has not registered (provisioning's register
    step not done yet, or moved to another municipality) gets 403 for its state. That 403 was
    retried for ever: the portal sink never moved past the batch holding it, and no later vote
    of any bench reached the portal."""
    now = one_day_now(before=120, after=10)
    poll = protocol_poll(
        "mostar-unknown-bench-test", now - 3600, now + 86400, municipalities=["mostar"]
    )
    real_portal.call("POST", "/api/v1/polls", poll)
    gw = gateway_factory(
        mosquitto.port,
        f'[portal]\nurl = "{real_portal.url}"\ntoken = "{real_portal.token}"\n',
        sink_options={"portal": {"batch_rows": 2}},  # the stranger's rows in a batch of their own
    )
    bench = Publisher(mosquitto.host, mosquitto.port)
    stranger = "mostar-77"  # not registered at the portal
    bench.publish(topic_of(stranger, "telemetry"), telemetry(stranger, 1, 1, now - 100))
    bench.publish(topic_of(stranger, "vote"), vote(stranger, 1, 2, now - 99, poll["id"], "no"))
    bench.wait_published()
    wait_until(lambda: gw.counts["accepted"] == 2, 10, what="the stranger's records stored")
    b = "mostar-01"
    for seq in range(1, 5):
        bench.publish(topic_of(b, "vote"), vote(b, 3, seq, now - 90 + seq, poll["id"], "yes"))
    bench.wait_published()

    def total() -> Any:
        r = real_portal.call("GET", f"/api/v1/polls/{poll['id']}/results")
        return r if r.get("total") == 4 else None

    r = wait_until(total, 30, what="mostar-01's 4 votes in the portal's results")
    assert r["benches"] == {b: {"yes": 4, "no": 0}}

    # The stranger's vote is the portal's to refuse (not_your_bench), and it is kept aside.
    def store() -> Store:
        return Store(gw.cfg.spool.path, readonly=True)

    def refused() -> bool:
        st = store()
        try:
            return any("not_your_bench" in k for k in st.quarantine_counts())
        finally:
            st.close()

    wait_until(refused, 10, what="the stranger's vote quarantined with the portal's reason")
    st = store()
    last = st.last_id()
    st.close()
    wait_until(lambda: gw.sinks[0].watermark >= last, 15, what="the portal sink past every row")
