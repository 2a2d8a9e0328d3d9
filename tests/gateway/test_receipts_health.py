"""Receipts after a mixed stream, and online/offline as docs/interfaces.md's [health] says."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.health import Health
from edge_gateway.receipts import Receipts
from edge_gateway.service import Gateway
from klupa.services import Broker
from testkit.gateway import Publisher, telemetry, topic_of, vote, wait_until

OFFLINE = b'{"v":1,"bench":"mostar-01","state":"offline"}'


def covered(boots: dict[int, list[tuple[int, int]]], boot: int, seq: int) -> bool:
    return any(lo <= seq <= hi for lo, hi in boots.get(boot, []))


def test_receipt_ranges_merge() -> None:
    r = Receipts()
    for seq in [5, 1, 3, 2, 9, 4, 8]:
        r.add("b", 1, seq)
    assert r.boots("b") == {1: [(1, 5), (8, 9)]}
    assert not r.has_pending("b")


def test_a_record_of_an_old_boot_is_in_the_next_receipt() -> None:
    """docs/protocol.md: every stored record is covered by a receipt published after it was stored,
    whatever its boot's age (the old receipt kept only the 3 latest boots: boot 1 was re-sent
    for ever)."""
    r = Receipts()
    for boot in range(2, 40):
        r.add("b", boot, 1)
    r.payload("b")
    r.add("b", 1, 7)  # a late record of the oldest boot
    assert r.has_pending("b")
    assert covered(r.boots("b"), 1, 7)
    assert not r.has_pending("b")


def test_receipts_stay_small_and_in_turn_cover_everything() -> None:
    """A bench that fragments its seqs (every other one, over many boots) gets receipts under
    2,048 bytes each, and the receipts that follow cover every record it sent."""
    r = Receipts()
    sent = [(boot, seq) for boot in range(1, 30) for seq in range(1, 2000, 2)]
    for boot, seq in sent:
        r.add("b", boot, seq)
    seen: set[tuple[int, int]] = set()
    rounds = 0
    while r.has_pending("b"):
        payload = r.payload("b")
        assert len(payload) < 2048
        for boot, ranges in json.loads(payload)["boots"].items():
            for lo, hi in ranges:
                seen.update((int(boot), s) for s in range(lo, hi + 1))
        rounds += 1
        assert rounds < 10_000
    assert set(sent) <= seen
    # and nothing in a receipt that was not stored
    assert seen == set(sent)


def test_a_bench_sending_each_record_under_a_new_boot_costs_little_per_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each record's receipt bookkeeping sorted every boot its bench held once past 64, and
    a bench that sends every record under a new boot keeps them all until receipts drain
    them: quadratic in the one writer thread every bench waits on (20,000 such records took
    12 s). Counted in elements sorted, not in seconds: at most a few per record."""
    from edge_gateway import receipts as receipts_module

    work = [0]

    def counting_sorted(items: Any, **kw: Any) -> list[Any]:
        out = sorted(items, **kw)
        work[0] += len(out)
        return out

    monkeypatch.setattr(receipts_module, "sorted", counting_sorted, raising=False)
    r = Receipts()
    n = 5000
    for boot in range(1, n + 1):
        r.add("b", 1_000_000 + boot, 1)
    assert work[0] <= 4 * n
    seen: set[int] = set()
    while r.has_pending("b"):
        seen.update(int(b) for b in json.loads(r.payload("b"))["boots"])
    assert seen == {1_000_000 + boot for boot in range(1, n + 1)}
    assert len(r.ranges["b"]) == receipts_module.MAX_BOOTS_KEPT  # and then forgotten


def test_a_restart_keeps_in_memory_only_the_newest_boots_of_each_bench() -> None:
    """The store's ranges of every boot were loaded whole at a start and kept until the bench
    next sent something: a bench that had sent a million boots held them all in memory."""
    from edge_gateway.receipts import MAX_BOOTS_KEPT

    r = Receipts({"b": {boot: [(1, 3)] for boot in range(1, 5001)}, "c": {7: [(1, 2)]}})
    assert sorted(r.ranges["b"]) == list(range(5001 - MAX_BOOTS_KEPT, 5001))
    assert r.ranges["c"] == {7: [[1, 2]]}
    r.add("b", 1, 4)  # a late record of a forgotten boot is receipted all the same
    assert covered(r.boots("b"), 1, 4)


def test_receipts_after_a_mixed_stream_cover_exactly_the_store(
    mosquitto: Broker, gateway_factory: Callable[..., Gateway]
) -> None:
    gw = gateway_factory(mosquitto.port)
    now = int(time.time())
    pub = Publisher(mosquitto.host, mosquitto.port)
    t1, t2 = topic_of("mostar-01", "telemetry"), topic_of("mostar-02", "telemetry")
    sent = 0
    for seq in range(1, 6):
        pub.publish(t1, telemetry("mostar-01", 16, seq, now - 500))
    for seq in (1, 2, 3, 5, 2):  # a gap at 4, a duplicate of 2
        pub.publish(t1, telemetry("mostar-01", 17, seq, now - 400))
    pub.publish(t1, telemetry("mostar-01", 17, 6, now + 4000))  # rejected: ts_future, still handled
    pub.publish(t1, b"not json")  # rejected, no identity
    pub.publish(topic_of("mostar-01", "vote"), vote("mostar-01", 17, 7, now - 10, "p-one", "yes"))
    sent += 13
    for boot in range(1, 6):  # five boots pending at once: the receipt covers them all
        pub.publish(t2, telemetry("mostar-02", boot, 1, now - 300))
    for seq in range(1, 80, 2):  # forty ranges: all fit in one receipt
        pub.publish(t2, telemetry("mostar-02", 5, seq + 10, now - 200))
    sent += 45
    pub.wait_published()
    wait_until(lambda: gw.counts["received"] == sent, 10, what="all received")
    assert gw.counts["duplicates"] == 1 and gw.counts["rejected"] == 2
    time.sleep(1.2)  # the last receipt may wait out the once-per-second limit

    sub = Publisher(mosquitto.host, mosquitto.port)
    sub.subscribe("klupa/v1/mostar/+/receipt")

    def receipts() -> dict[str, dict[str, list[list[int]]]] | None:
        with sub.lock:
            got = {t.split("/")[3]: json.loads(p)["boots"] for t, p, retained in sub.received}
        return got if len(got) == 2 else None

    got = wait_until(receipts, 5, what="retained receipts")
    # seq 6 was from the future by this gateway's clock: quarantined, not receipted
    assert got["mostar-01"] == {"16": [[1, 5]], "17": [[1, 3], [5, 5], [7, 7]]}
    boots = got["mostar-02"]
    assert sorted(boots) == ["1", "2", "3", "4", "5"]
    assert all(boots[b] == [[1, 1]] for b in "1234")
    expected5 = [[1, 1]] + [[s + 10, s + 10] for s in range(1, 80, 2)]
    assert boots["5"] == expected5
    # and the store holds exactly these
    stored = gw.store.receipt_ranges()
    assert [list(r) for r in stored["mostar-01"][17]] == [[1, 3], [5, 5], [7, 7]]
    assert [list(r) for r in stored["mostar-02"][5]] == expected5
    sub.close()
    pub.close()


def test_will_makes_a_bench_offline_within_a_second(
    mosquitto: Broker, gateway_factory: Callable[..., Gateway]
) -> None:
    gw = gateway_factory(mosquitto.port)
    bench = Publisher(
        mosquitto.host,
        mosquitto.port,
        client_id="mostar-01",
        will=(topic_of("mostar-01", "status"), OFFLINE),
    )
    online = {
        "v": 1,
        "bench": "mostar-01",
        "state": "online",
        "boot": 3,
        "fw": "1.0.0",
        "mpy": "1.27.0",
        "ts": int(time.time()),
    }
    bench.publish(topic_of("mostar-01", "status"), online, retain=True)
    bench.wait_published()
    wait_until(lambda: gw.health.get("mostar-01").online, 5, what="online")
    bench.drop()  # the socket closes at the end of drop(): time from there
    t0 = time.monotonic()
    wait_until(lambda: not gw.health.get("mostar-01").online, 2, step=0.01, what="offline")
    assert time.monotonic() - t0 < 1.0
    rows = gw.store.conn.execute(
        "SELECT body FROM messages WHERE kind = 'state' ORDER BY id"
    ).fetchall()
    assert [json.loads(r[0])["online"] for r in rows] == [True, False]


def test_silence_longer_than_the_limit_makes_a_bench_offline(
    mosquitto: Broker, gateway_factory: Callable[..., Gateway]
) -> None:
    gw = gateway_factory(mosquitto.port, "[health]\noffline_after_s = 1\n")
    pub = Publisher(mosquitto.host, mosquitto.port)
    now = int(time.time())
    pub.publish(topic_of("mostar-01", "status"), {"v": 1, "bench": "mostar-01", "state": "online"})
    # mostar-02 reported a 10-s window: its limit is 2.5 x 10 s, not offline_after_s
    pub.publish(
        topic_of("mostar-02", "telemetry"),
        telemetry("mostar-02", 1, 1, now, period=10, seat={"occ": 5}),
    )
    pub.wait_published()
    wait_until(lambda: gw.health.get("mostar-01").online and gw.health.get("mostar-02").online, 5)
    t0 = time.monotonic()
    wait_until(lambda: not gw.health.get("mostar-01").online, 4, step=0.02, what="silent offline")
    assert 0.7 < time.monotonic() - t0 < 2.0
    time.sleep(1.5)
    assert gw.health.get("mostar-02").online


def test_sleeping_bench_is_offline_only_after_until_plus_its_window() -> None:
    h = Health(offline_after_s=300)
    h.on_record("b", 1000.0)
    h.get("b").period = 900
    c = h.on_status("b", "sleeping", 1010.0, until=2000)
    assert c is not None and c.sleeping and not c.online
    assert h.tick(2000 + 899.0) == []
    changes = h.tick(2000 + 901.0)
    assert [(x.online, x.sleeping) for x in changes] == [(False, False)]
    assert h.on_record("b", 3000.0) is not None and h.get("b").online


def test_status_points_take_the_status_ts_and_stay_in_order() -> None:
    # docs/interfaces.md: a bench_status point carries its message's ts (offline: the gateway's
    # time). A birth Status older than the bench's last point (a retained one delivered after
    # a gateway restart) is placed just after it, so the latest point is the latest state.
    h = Health(offline_after_s=300)
    c = h.on_status("b", "online", 5000.0, boot=7, fw="1.0.0", ts=4990)
    assert c is not None and c.online and c.ts == 4990.0 and c.t == 5000.0
    off = h.on_status("b", "offline", 6000.0)
    assert off is not None and not off.online and off.ts == 6000.0
    late = h.on_status("b", "online", 6001.0, ts=3000)  # days-old retained birth
    assert late is not None and late.online and late.ts is not None
    assert 6000.0 < late.ts < 6000.01
    h.tick(7000.0)  # silent: offline at the gateway's time
    back = h.on_record("b", 7100.0)  # records from a spool bring it back at arrival
    assert back is not None and back.ts == 7100.0
    assert h.on_status("b", "offline", 8000.0) is not None
    ahead = h.on_status("b", "online", 8001.0, ts=8250)  # a bench clock 250 s ahead
    assert ahead is not None and ahead.ts == 8250.0
    gone = h.on_status("b", "offline", 8010.0)  # the will, by the gateway's clock
    assert gone is not None and gone.ts > 8250.0  # still after the online point


def test_a_retained_birth_after_a_restart_does_not_slip_before_the_last_offline_point(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """A bench_status point takes an online Status's ts, kept after the bench's previous point.
    That order lived in memory only: after a restart the retained birth (hours old) that the
    new subscription delivers again placed the online point before the offline one the last
    run wrote, and InfluxDB's latest bench_status said offline while the bench was online."""
    from edge_gateway.config import load
    from edge_gateway.store import Store
    from testkit.gateway import write_config

    cfg = write_config(
        tmp_path / "gw.toml",
        "mostar",
        mosquitto.port,
        tmp_path / "s.sqlite",
        "[health]\noffline_after_s = 1\n",
    )
    bench = Publisher(mosquitto.host, mosquitto.port)
    birth = {"v": 1, "bench": "mostar-01", "state": "online", "ts": int(time.time()) - 3600}
    bench.publish(topic_of("mostar-01", "status"), birth, retain=True)
    bench.wait_published()

    def points() -> list[tuple[bool, float]]:
        st = Store(str(tmp_path / "s.sqlite"), readonly=True)
        try:
            rows = st.conn.execute("SELECT body FROM messages WHERE kind = 'state' ORDER BY id")
            return [(json.loads(b)["online"], json.loads(b)["t"]) for (b,) in rows]
        finally:
            st.close()

    for run in (1, 2):  # the birth, then silence: offline; a restart, the birth again
        gw = Gateway(load(cfg))
        gw.start()
        try:
            wait_until(lambda n=run: len(points()) >= 2 * n, 15, what=f"run {run}'s two points")
        finally:
            gw.stop(flush_s=1)
    (on1, t_on1), (off1, t_off1), (on2, t_on2) = points()[:3]
    assert on1 and not off1 and on2
    assert t_on1 == birth["ts"] and t_on2 > t_off1
    bench.close()
