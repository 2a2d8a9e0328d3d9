"""A hostile or broken bench against the real gateway, through a real Mosquitto whose password
file and ACL are the ones provisioning writes. After each attack the gateway is up, later good
records are stored and receipted, and nothing else is (../shared/DESIGN.md principle 7)."""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.cli import status_rows
from edge_gateway.config import load
from edge_gateway.service import Gateway
from edge_gateway.store import Store
from klupa.services import Broker, Influx1, free_port
from provisioning.broker import acl_text
from testkit.gateway import (
    Publisher,
    RecordingPortal,
    dumps,
    event,
    telemetry,
    topic_of,
    vote,
    wait_until,
    write_config,
)

USERS = {
    "gateway-mostar": "gw-secret-test",
    "ops-mostar": "ops-secret-test",
    "mostar-01": "bench1-test",
    "mostar-02": "bench2-test",
}
T1 = topic_of("mostar-01", "telemetry")


@pytest.fixture
def broker(mosquitto_factory: Callable[..., Broker]) -> Broker:
    """Mosquitto with provisioning's ACL (each bench its own topics) and client id = user."""
    return mosquitto_factory(
        passwords=USERS,
        acl=acl_text("mostar", ["mostar-01", "mostar-02"]),
        tls=False,
        extra="use_username_as_clientid true\n",
    )


@pytest.fixture
def start_gateway(tmp_path: Path, broker: Broker) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def make(extra: str = "", store: str = "store.sqlite", synced: Any = None) -> Gateway:
        n = len(started)
        path = write_config(
            tmp_path / f"gw{n}.toml", "mostar", broker.port, tmp_path / store, extra
        )
        text = path.read_text().replace(
            "[mqtt]\n", '[mqtt]\nusername = "gateway-mostar"\npassword = "gw-secret-test"\n', 1
        )
        path.write_text(text)
        gw = Gateway(load(path))
        if synced is not None:
            gw.clock_synced = synced
        gw.start()
        started.append(gw)
        if synced is None:
            wait_until(gw.connected.is_set, 10, what="the gateway to connect")
            time.sleep(0.2)
        return gw

    yield make
    for gw in started:
        if not gw.closing:
            gw.stop(flush_s=1)


def bench(broker: Broker, name: str = "mostar-01", **kw: Any) -> Publisher:
    return Publisher(
        broker.host, broker.port, client_id=name, username=name, password=USERS[name], **kw
    )


def bench_listening(broker: Broker) -> Publisher:
    """mostar-01 connected with its own password, subscribed to its receipts."""
    pub = bench(broker)
    pub.subscribe(topic_of("mostar-01", "receipt"))
    return pub


@pytest.fixture
def link(
    broker: Broker, start_gateway: Callable[..., Gateway]
) -> Iterator[tuple[Gateway, Publisher]]:
    """A gateway started with the defaults, and mostar-01 listening for its receipts."""
    gw = start_gateway()
    pub = bench_listening(broker)
    yield gw, pub
    pub.close()


def stored(gw: Gateway, where: str = "seq IS NOT NULL AND kind != 'rejected'") -> list[tuple]:
    st = Store(gw.cfg.spool.path, readonly=True)
    try:
        return st.conn.execute(
            f"SELECT bench, boot, seq FROM messages WHERE {where} ORDER BY bench, boot, seq"
        ).fetchall()
    finally:
        st.close()


def last_receipt(pub: Publisher, bench_id: str = "mostar-01") -> dict[str, Any] | None:
    with pub.lock:
        got = [json.loads(p) for t, p, _ in pub.received if t == topic_of(bench_id, "receipt")]
    return got[-1] if got else None


def receipted(pub: Publisher, boot: int, seq: int) -> bool:
    r = last_receipt(pub)
    return r is not None and any(lo <= seq <= hi for lo, hi in r["boots"].get(str(boot), []))


def good_record_goes_through(gw: Gateway, pub: Publisher, boot: int, seq: int) -> None:
    """After an attack: a good record is stored and receipted."""
    pub.publish(T1, telemetry("mostar-01", boot, seq, int(time.time()) - 5))
    pub.wait_published()
    wait_until(lambda: receipted(pub, boot, seq), 10, what=f"a receipt for {boot}/{seq}")
    assert ("mostar-01", boot, seq) in stored(gw)
    assert not gw.fatal.is_set() and gw.writer.is_alive()


# --------------------------------------------------------------------------- poison messages


def test_deeply_nested_json_is_a_counted_reject_not_a_crash(
    link: tuple[Gateway, Publisher], start_gateway: Callable[..., Gateway]
) -> None:
    """1,020 nested brackets made the decoder raise RecursionError and stopped the gateway,
    and the broker gave it the same message again at every restart."""
    gw, pub = link
    poison = b"[" * 1020 + b"]" * 1020
    pub.publish(T1, poison)
    inner = b"[" * 990 + b"]" * 990  # inside an object, still under 2,048 bytes
    pub.publish(T1, b'{"v":1,"bench":"mostar-01","boot":1,"seq":1,"x":' + inner + b"}")
    pub.wait_published()
    wait_until(lambda: gw.counts["rejected:too_deep"] == 2, 10, what="two too_deep rejects")
    good_record_goes_through(gw, pub, 5, 1)
    # acknowledged: a new session of the gateway is not handed the poison again
    gw.stop(flush_s=1)
    gw2 = start_gateway()
    time.sleep(1.0)
    assert gw2.counts["received"] == gw.counts["received"]


def test_every_payload_size_and_byte_is_judged_and_the_gateway_goes_on(
    link: tuple[Gateway, Publisher],
) -> None:
    gw, pub = link
    good = json.dumps(telemetry("mostar-01", 2, 1, int(time.time()) - 10)).encode()
    payloads = [b"", b"\x00", b"\xff\xfe\xfd", b'{"v":1,"bench":"mostar-01\x00"}', good[:-1]]
    payloads += [good.replace(b'"normal"', b'"\xc3\x28"')]  # invalid UTF-8 inside a string
    for size in (1, 2, 100, 2047, 2048, 2049, 4096, 10_000, 100_000):
        payloads.append((b'{"v":1,"pad":"' + b"a" * size + b'"}')[:size])
        payloads.append(os.urandom(size))
    for p in payloads:
        pub.publish(T1, p)
    pub.wait_published()
    wait_until(lambda: gw.counts["received"] >= len(payloads), 15, what="every payload judged")
    assert gw.counts["rejected"] == len(payloads) and gw.counts["accepted"] == 0
    assert gw.counts["rejected:too_large"] >= 6
    good_record_goes_through(gw, pub, 2, 2)


def test_a_message_the_store_cannot_take_is_quarantined_and_the_rest_stored(
    broker: Broker, start_gateway: Callable[..., Gateway]
) -> None:
    """A group that could not be stored stopped the gateway, and the broker gave the same group
    back at every restart. Now the one message that breaks is found, quarantined, acknowledged."""
    gw = start_gateway()
    derive = gw._derive

    def broken(msg: Any, rid: int) -> None:  # a bug no one foresaw, on one message
        if getattr(msg, "seq", None) == 13:
            raise RuntimeError("boom")
        derive(msg, rid)

    gw._derive = broken  # type: ignore[method-assign]
    pub = bench_listening(broker)
    now = int(time.time())
    for seq in range(1, 21):
        pub.publish(T1, telemetry("mostar-01", 3, seq, now - 100 + seq))
    pub.wait_published()
    wait_until(lambda: gw.counts["received"] == 20, 10, what="20 judged")
    assert gw.counts["rejected:unstorable"] == 1
    assert [s for _, _, s in stored(gw)] == [s for s in range(1, 21) if s != 13]
    st = Store(gw.cfg.spool.path, readonly=True)
    assert st.quarantine_counts() == {"unstorable": 1}
    st.close()
    assert gw.writer.is_alive() and not gw.fatal.is_set()
    gw.stop(flush_s=1)
    gw2 = start_gateway()  # everything was acknowledged: nothing comes back
    time.sleep(1.0)
    assert gw2.counts["received"] == 20
    pub.close()


def test_a_record_the_gateway_fails_to_judge_is_not_receipted_and_is_taken_once_fixed(
    link: tuple[Gateway, Publisher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception while judging a message (a bug of the gateway's, not the record's) is an
    `internal` reject, and it was receipted like a malformed record: the bench deleted a good
    vote from its spool, and nothing could bring it back once the gateway was fixed."""
    from edge_gateway import protocol as P

    gw, pub = link
    judge = P.validate

    def buggy(topic: str, payload: bytes, now: float, m: str | None = None) -> P.Message:
        if b'"seq":2,' in payload:
            raise KeyError("a bug of the gateway's")
        return judge(topic, payload, now, m)

    monkeypatch.setattr(P, "validate", buggy)
    v = topic_of("mostar-01", "vote")
    now = int(time.time())
    for seq in (1, 2, 3):
        pub.publish(v, vote("mostar-01", 16, seq, now - 10 + seq, "p-one", "yes"))
    pub.wait_published()
    wait_until(lambda: receipted(pub, 16, 3), 10, what="the records judged")
    assert gw.counts["rejected:internal"] == 1
    assert receipted(pub, 16, 1) and not receipted(pub, 16, 2)
    monkeypatch.undo()  # the gateway is fixed; the bench sends what is not receipted again
    pub.publish(v, vote("mostar-01", 16, 2, now - 8, "p-one", "yes"))
    pub.wait_published()
    wait_until(lambda: receipted(pub, 16, 2), 10, what="the re-sent vote receipted")
    assert [s for _, _, s in stored(gw)] == [1, 2, 3]


# --------------------------------------------------------------------------- floods and other benches


def test_a_qos0_flood_is_counted_and_rejected_and_memory_stays_bounded(
    link: tuple[Gateway, Publisher],
) -> None:
    """QoS 0 bypasses the broker's in-flight window: 25,619 were queued in 1.5 s."""
    gw, pub = link
    now = int(time.time())
    n = 5000
    payload = json.dumps(telemetry("mostar-01", 4, 1, now)).encode()
    for _ in range(n):
        pub.client.publish(T1, payload, qos=0)
    wait_until(lambda: gw.counts["rejected:qos0"] == n, 30, what="every QoS 0 message counted")
    assert gw.queue.maxsize > 0 and gw.queue.qsize() <= gw.queue.maxsize
    assert stored(gw) == []
    good_record_goes_through(gw, pub, 4, 2)


def test_a_bench_cannot_write_for_another_bench(link: tuple[Gateway, Publisher]) -> None:
    gw, pub = link
    now = int(time.time())
    # on another bench's topic: the broker's ACL drops it
    pub.publish(topic_of("mostar-02", "vote"), vote("mostar-02", 1, 1, now, "p-one", "yes"))
    # on its own topic, in another bench's name: the gateway rejects it
    pub.publish(topic_of("mostar-01", "vote"), vote("mostar-02", 1, 2, now, "p-one", "yes"))
    pub.wait_published()
    wait_until(lambda: gw.counts["rejected:bench_mismatch"] == 1, 10, what="bench_mismatch")
    good_record_goes_through(gw, pub, 1, 3)
    assert [b for b, _, _ in stored(gw)] == ["mostar-01"]


def test_a_bench_password_cannot_take_over_the_gateway_session(
    broker: Broker, start_gateway: Callable[..., Gateway]
) -> None:
    """With use_username_as_clientid, mostar-01's password connecting as `gateway-mostar`
    gets the client id `mostar-01`: the gateway's queued session is untouched."""
    gw = start_gateway()
    gw.stop(flush_s=1)  # its persistent session now queues for it
    pub = bench(broker)
    now = int(time.time())
    for seq in range(1, 6):
        pub.publish(topic_of("mostar-01", "vote"), vote("mostar-01", 6, seq, now, "p-one", "yes"))
    pub.wait_published()
    thief = Publisher(
        broker.host,
        broker.port,
        client_id="gateway-mostar",
        username="mostar-01",
        password=USERS["mostar-01"],
        clean_session=True,
    )
    time.sleep(0.5)
    thief.close()
    gw2 = start_gateway()
    wait_until(lambda: gw2.counts["accepted"] == 5, 10, what="all 5 queued votes")
    pub.close()


def test_another_record_under_a_stored_identity_is_kept_aside_not_dropped_unseen(
    link: tuple[Gateway, Publisher],
) -> None:
    """A bench whose boot counter went back (re-flashed without its seed, a replacement not
    provisioned) sends new records under identities already stored. Each was counted as a
    duplicate of the stored record and dropped without a trace. A re-send still is one."""
    gw, pub = link
    now = int(time.time())
    v = topic_of("mostar-01", "vote")
    first = vote("mostar-01", 12, 1, now - 50, "p-one", "yes")
    pub.publish(v, first)
    pub.wait_published()
    wait_until(lambda: receipted(pub, 12, 1), 10, what="the first vote receipted")
    pub.publish(v, b" " + dumps(first).replace(b'"v":1', b'"v":1.0'))  # a re-send, respelled
    # a re-send of a record made before the bench's clock was set, after a correction
    pub.publish(v, {**first, "ts": now - 48})
    pub.publish(v, vote("mostar-01", 12, 1, now - 5, "p-one", "no"))  # another vote
    pub.publish(T1, telemetry("mostar-01", 12, 1, now - 4))  # another kind of record
    pub.wait_published()
    wait_until(lambda: gw.counts["received"] == 5, 10, what="all five judged")
    assert gw.counts["accepted"] == 1 and gw.counts["duplicates"] == 2
    assert gw.counts["rejected:identity_reused"] == 2
    st = Store(gw.cfg.spool.path, readonly=True)
    try:
        kept = st.conn.execute(
            "SELECT topic, detail, payload FROM quarantine WHERE reason = 'identity_reused' "
            "ORDER BY id"
        ).fetchall()
        votes = st.conn.execute("SELECT choice FROM votes").fetchall()
    finally:
        st.close()
    assert [(t, d) for t, d, _ in kept] == [
        (v, "12/1 is stored with another body"),
        (T1, "12/1 is stored as vote, this is telemetry"),
    ]
    assert json.loads(kept[0][2])["choice"] == "no" and votes == [("yes",)]
    assert receipted(pub, 12, 1)
    good_record_goes_through(gw, pub, 12, 2)


def ack(bench_id: str, seq: int, cid: str) -> dict[str, Any]:
    return {
        "v": 1,
        "bench": bench_id,
        "boot": 13,
        "seq": seq,
        "ts": int(time.time()),
        "id": cid,
        "ok": True,
        "detail": "",
    }


def test_an_ack_counts_only_from_the_bench_the_command_went_to(
    broker: Broker, link: tuple[Gateway, Publisher]
) -> None:
    """The ops link (`gateway cmd`, the rollout) took an ack by its id alone: another bench
    that learnt a command's id (a log, a screen) could ack it, say a reboot or an update was
    taken, and a flood of acks for made-up ids emptied what the link had collected."""
    from edge_gateway.commands import CommandLink

    gw, one = link
    ops = CommandLink(gw.cfg, "ops-mostar", USERS["ops-mostar"])  # every bench's acks
    ops.open()
    other = bench(broker, "mostar-02")
    try:
        cid = ops.send("mostar-01", "ota", {"url": "http://x/m.json", "version": "9.9.9"})
        ack_topic = topic_of("mostar-02", "cmd/ack")
        other.publish(ack_topic, ack("mostar-02", 1, cid))  # on its own topic, in its name
        other.publish(ack_topic, ack("mostar-01", 2, cid))  # on its own topic, in another's
        mine = ops.send("mostar-02", "ping", {})
        other.publish(ack_topic, ack("mostar-02", 3, mine))  # in order after the two
        other.wait_published()
        assert ops.wait_ack(mine, 10) is not None
        assert ops.ack(cid) is None
        one.publish(topic_of("mostar-01", "cmd/ack"), ack("mostar-01", 1, cid))
        one.wait_published()
        assert (ops.wait_ack(cid, 10) or {}).get("bench") == "mostar-01"
        for n in range(10_002):  # acks for ids never sent
            other.publish(ack_topic, ack("mostar-02", 10 + n, f"c-{n:08x}"))
        last = ops.send("mostar-02", "ping", {})
        other.publish(ack_topic, ack("mostar-02", 99_999, last))
        other.wait_published(60)
        assert ops.wait_ack(last, 30) is not None
        assert (ops.ack(cid) or {}).get("bench") == "mostar-01"
    finally:
        other.close()
        ops.close()


# --------------------------------------------------------------------------- clocks


def test_records_rejected_for_their_time_are_not_receipted_and_taken_later(
    link: tuple[Gateway, Publisher],
) -> None:
    """A receipted time reject made the bench delete the record: with a wrong clock on either
    side, votes were lost."""
    gw, pub = link
    now = int(time.time())
    pub.publish(topic_of("mostar-01", "vote"), vote("mostar-01", 7, 1, now + 4000, "p-one", "yes"))
    pub.publish(T1, telemetry("mostar-01", 7, 2, now - 40 * 86400))
    pub.publish(T1, telemetry("mostar-01", 7, 3, now - 10))
    pub.wait_published()
    wait_until(lambda: receipted(pub, 7, 3), 10, what="the good record's receipt")
    assert gw.counts["clock"] == 2
    assert not receipted(pub, 7, 1) and not receipted(pub, 7, 2)
    # the bench's clock is corrected, and it sends the same records again
    pub.publish(topic_of("mostar-01", "vote"), vote("mostar-01", 7, 1, now - 5, "p-one", "yes"))
    pub.publish(T1, telemetry("mostar-01", 7, 2, now - 6))
    pub.wait_published()
    wait_until(lambda: receipted(pub, 7, 1) and receipted(pub, 7, 2), 10, what="receipts")
    assert [s for _, _, s in stored(gw)] == [1, 2, 3]


def test_the_gateway_takes_nothing_before_its_clock_is_synchronised(
    broker: Broker, start_gateway: Callable[..., Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    first = start_gateway()  # the persistent session exists
    first.stop(flush_s=1)
    pub = bench(broker)
    now = int(time.time())
    for seq in range(1, 4):
        pub.publish(T1, telemetry("mostar-01", 8, seq, now - 30 + seq))
    pub.wait_published()
    synced = threading.Event()
    gw = start_gateway("[clock]\nrequire_sync = true\n", synced=synced.is_set)
    time.sleep(2.0)
    assert not gw.connected.is_set() and gw.counts["received"] == 0
    assert "waiting for the system clock to be synchronised" in caplog.text
    synced.set()
    wait_until(lambda: gw.counts["accepted"] == 3, 15, what="the queued records, once in sync")
    pub.close()


# --------------------------------------------------------------------------- full disk


def test_records_after_a_quiet_spell_longer_than_retention_are_forwarded(
    broker: Broker, start_gateway: Callable[..., Gateway], portal: RecordingPortal
) -> None:
    """Once every row was forwarded and older than retention_days (benches stored for the
    winter, a long outage), upkeep emptied the messages table and SQLite numbered the next
    row 1 again: below the sinks' watermarks, so nothing after that, votes included, ever
    reached the portal, and the backlog said 0."""
    extra = f'[portal]\nurl = "{portal.url}"\ntoken = "{portal.token}"\n'
    gw = start_gateway(extra, store="quiet.sqlite")
    pub = bench_listening(broker)
    now = int(time.time())
    v = topic_of("mostar-01", "vote")
    for seq in range(1, 4):
        pub.publish(v, vote("mostar-01", 14, seq, now - 10 + seq, "p-one", "yes"))
    pub.wait_published()
    wait_until(lambda: len(portal.votes) == 3, 15, what="the first votes at the portal")
    gw.stop(flush_s=2)  # its watermark saved
    st = Store(gw.cfg.spool.path)
    try:  # the hourly upkeep, 40 days later
        st.prune(["portal"], gw.cfg.spool.retention_days, 2048, time.time() + 40 * 86400)
    finally:
        st.close()
    start_gateway(extra, store="quiet.sqlite")
    for seq in range(4, 6):
        pub.publish(v, vote("mostar-01", 14, seq, now - 5 + seq, "p-one", "no"))
    pub.wait_published()
    wait_until(lambda: len(portal.votes) == 5, 15, what="the votes after the spell at the portal")
    pub.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs where this machine lets us mount one (root), else skip with the reason."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Take every free byte of the file system that holds ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_full_disk_stops_acknowledging_and_resumes_by_itself(
    broker: Broker, start_gateway: Callable[..., Gateway], small_disk: Path
) -> None:
    mport = free_port()
    gw = start_gateway(f"[metrics]\nport = {mport}\n", store=str(small_disk / "store.sqlite"))
    pub = bench_listening(broker)
    good_record_goes_through(gw, pub, 9, 1)
    fill(small_disk / "filler")
    now = int(time.time())
    seq = 1
    while gw.store_state == "ok" and seq < 400:
        seq += 1
        pub.publish(T1, telemetry("mostar-01", 9, seq, now - 100))
        pub.wait_published()
        time.sleep(0.02)
    assert gw.store_state == "disk_full"
    sent = seq
    code, body = healthz(mport)
    assert code == 503 and body == {
        "ok": False,
        "broker": "connected",
        "store": "disk_full",
        "clock": "synchronised",
    }
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        assert "klupa_gateway_store_writable 0" in r.read().decode()
    assert gw.writer.is_alive()
    (small_disk / "filler").unlink()  # space returns
    wait_until(lambda: receipted(pub, 9, sent), 30, what="every record once space returned")
    assert [s for _, _, s in stored(gw)] == list(range(1, sent + 1))
    assert gw.store_state == "ok" and healthz(mport)[0] == 200
    pub.close()


def test_pruning_on_a_full_disk_does_not_vacuum(tmp_path: Path, monkeypatch: Any) -> None:
    """VACUUM writes a whole copy of the file: on a full disk it cannot, and must not be tried."""
    st = Store(str(tmp_path / "s.sqlite"))
    with st.transaction():
        for i in range(3000):
            st.insert_message("mostar-01", 1, i + 1, "telemetry", 0, time.time(), b"x" * 200)
    calls: list[str] = []
    real = st.conn

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def execute(self, sql: str, *args: Any) -> Any:
            calls.append(sql)
            return real.execute(sql, *args)

    st.conn = Spy()  # type: ignore[assignment]
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1024))
    n = st.prune([], 35, 0.1, time.time())  # within retention, over max_mb
    assert n > 0 and "VACUUM" not in calls
    monkeypatch.undo()
    assert isinstance(real, sqlite3.Connection)


def test_bench_text_reaches_the_log_and_status_without_terminal_control(
    link: tuple[Gateway, Publisher], caplog: pytest.LogCaptureFixture
) -> None:
    gw, pub = link
    now = int(time.time())
    evil = "1.0\x1b[2J\x1b]0;pwned\x07\u202eevil"
    pub.publish(
        topic_of("mostar-01", "event"),
        event("mostar-01", 10, 1, now, "boot", reset="hard", fw=evil, safe=False),
    )
    pub.publish(
        topic_of("mostar-01", "event"),
        event("mostar-01", 10, 2, now, "fault", code="flash", detail="x\n2026 INFO forged\x1b[0m"),
    )
    pub.wait_published()
    wait_until(lambda: receipted(pub, 10, 2), 10, what="both events stored")
    gw.stop(flush_s=1)  # saves the bench table
    rows, _, _, _ = status_rows(gw.cfg)
    text = "\n".join("  ".join(r) for r in rows) + caplog.text
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b[2J" in "".join(rows[0]) and "x\\x0a2026 INFO forged" in caplog.text


def test_a_flapping_or_chattering_bench_does_not_flood_the_log(
    link: tuple[Gateway, Publisher], caplog: pytest.LogCaptureFixture
) -> None:
    """Each health change, and each fault, tamper or critical-power event a bench sent, was
    a log line of its own: a bench flapping its Status or streaming fault events wrote the
    journal on the SD card as fast as it could send. Rejects were limited already."""
    from edge_gateway.loglimit import BURST

    gw, pub = link
    caplog.set_level(logging.INFO, logger="edge_gateway")
    now = int(time.time())
    status, ev = topic_of("mostar-01", "status"), topic_of("mostar-01", "event")
    for i in range(60):
        state = "online" if i % 2 == 0 else "offline"
        pub.publish(status, {"v": 1, "bench": "mostar-01", "state": state})
        fault = event("mostar-01", 15, i + 1, now - 100 + i, "fault", code="flash", detail="x")
        pub.publish(ev, fault)
    pub.wait_published()
    wait_until(lambda: gw.counts["received"] == 120, 15, what="all 120 judged")
    assert gw.counts["status"] == 60 and gw.counts["accepted"] == 60  # every one handled
    lines = [r.getMessage() for r in caplog.records]
    assert len([t for t in lines if t.startswith("mostar-01 is ")]) == BURST
    assert len([t for t in lines if t.startswith("mostar-01: fault ")]) == BURST
    assert len([t for t in lines if "the rest are counted, not logged" in t]) == 2
    good_record_goes_through(gw, pub, 15, 61)


def test_the_ota_server_serves_files_only(tmp_path: Path) -> None:
    """No directory listing (which bundles exist), no dotfiles (a `.git`, a key left behind)."""
    from edge_gateway.serve import Listen, serve_ota

    (tmp_path / "1.2.0").mkdir()
    (tmp_path / "1.2.0" / "manifest.json").write_text('{"version":"1.2.0"}')
    (tmp_path / ".signing-key").write_text("secret")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]")
    server = serve_ota(str(tmp_path), Listen(free_port(), host="127.0.0.1"))
    base = f"http://127.0.0.1:{server.port}"
    try:
        with urllib.request.urlopen(base + "/1.2.0/manifest.json", timeout=5) as r:
            assert json.loads(r.read()) == {"version": "1.2.0"}
        for path in ("/", "/1.2.0/", "/1.2.0", "/.signing-key", "/.git/config", "/%2egit/config"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(base + path, timeout=5)
            assert info.value.code == 404, path
    finally:
        server.stop()


def test_idle_connections_neither_pile_up_nor_keep_the_http_servers_from_answering(
    tmp_path: Path,
) -> None:
    """Each connection to the OTA server (on the benches' network) or the metrics endpoint took
    a thread for as long as it was open, and an idle one stayed open for ever: anyone who
    reached the port could open thousands and exhaust the gateway process."""
    from edge_gateway import serve

    (tmp_path / "manifest.json").write_text('{"version":"1.2.0"}')
    server = serve.serve_ota(str(tmp_path), serve.Listen(free_port(), host="127.0.0.1"))

    def handler_threads() -> int:
        return sum("process_request" in t.name for t in threading.enumerate())

    n = serve.MAX_CONNECTIONS + 20
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(n)]
    try:
        for s in idle:
            s.settimeout(30)
        # Past the cap a connection is closed at once; those within it wait for a request.
        refused = [s for s in idle[serve.MAX_CONNECTIONS :] if s.recv(1) == b""]
        assert len(refused) == n - serve.MAX_CONNECTIONS
        assert handler_threads() <= serve.MAX_CONNECTIONS
    finally:
        for s in idle:
            s.close()
    # Their clients gone, their threads end, and the server answers again.
    wait_until(lambda: handler_threads() == 0, 10, what="the idle connections' threads to end")
    url = f"http://127.0.0.1:{server.port}/manifest.json"
    with urllib.request.urlopen(url, timeout=5) as r:
        assert json.loads(r.read()) == {"version": "1.2.0"}
    server.stop()
    # A connection that says nothing is closed after idle_s, by either server.
    gw_view: Any = type("V", (), {})()
    for quick in (
        serve.serve_ota(str(tmp_path), serve.Listen(free_port(), "127.0.0.1", idle_s=0.2)),
        serve.serve_metrics(gw_view, serve.Listen(free_port(), "127.0.0.1", idle_s=0.2)),
    ):
        try:
            s = socket.create_connection(("127.0.0.1", quick.port))
            s.settimeout(30)
            assert s.recv(1) == b""  # closed by the server, not timed out here
            s.close()
        finally:
            quick.stop()


def test_after_a_barrage_influxdb_holds_exactly_the_good_records(
    broker: Broker, start_gateway: Callable[..., Gateway], influxdb1: Influx1
) -> None:
    """Everything hostile at once, good records between: InfluxDB gets the good ones only."""
    gw = start_gateway(
        f'[influxdb]\nurl = "{influxdb1.url}"\napi_version = 1\ndatabase = "benches"\n'
        "flush_interval_s = 0.2\n"
    )
    pub = bench_listening(broker)
    now = int(time.time())
    good = 0
    bad: list[bytes] = [
        b"[" * 1020 + b"]" * 1020,
        b"\xff\xfe\x00",
        os.urandom(3000),
        dumps(telemetry("mostar-01", 11, 900, now + 4000)),  # from the future
        dumps(telemetry("mostar-02", 11, 901, now)),  # another bench's name
        dumps(telemetry("mostar-01", 11, 902, now, period=5)),  # out of range
    ]
    for i, payload in enumerate(bad):
        pub.publish(T1, payload)
        pub.publish(T1, telemetry("mostar-01", 11, i + 1, now - 60 + i))
        good += 1
    for _ in range(200):
        pub.client.publish(T1, dumps(telemetry("mostar-01", 11, 999, now)), qos=0)
    pub.wait_published()
    wait_until(lambda: receipted(pub, 11, good), 15, what="the good records receipted")
    wait_until(
        lambda: influxdb1.count("SELECT count(batt_soc) FROM power") >= good,
        20,
        what="the good records in InfluxDB",
    )
    time.sleep(1.0)  # anything else would have arrived by now
    assert influxdb1.count("SELECT count(batt_soc) FROM power") == good
    assert gw.writer.is_alive() and gw.counts["accepted"] == good
    pub.close()
