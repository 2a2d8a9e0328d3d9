"""The ingest log on its own: what is appended is read back after a restart, in order; a reset
empties it; a torn block and everything after it is not read; a full log says so."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge_gateway.ingest import Ingest
from edge_gateway.ingestlog import (
    SECTOR,
    Incoming,
    IngestLog,
    LogFull,
    LogStage,
    decode_blocks,
    encode_block,
)
from edge_gateway.protocol import TS_MAX_AGE_S, ProtocolError
from klupa.services import Broker
from testkit.gateway import Publisher, telemetry, topic_of, wait_until, write_config
from testkit.services import need_program

T = "klupa/v1/mostar/mostar-01/telemetry"


def entries(n: int, start: int = 0, size: int = 300) -> list[tuple[str, bytes, float]]:
    return [(T, bytes([i % 251]) * size, 1_795_000_000.0 + i) for i in range(start, start + n)]


def test_appended_groups_come_back_in_order_after_a_restart(tmp_path: Path) -> None:
    log = IngestLog(tmp_path / "gw.ingest")
    assert log.open() == []
    log.append(entries(3))
    log.append(entries(2, start=3))
    log.close()
    again = IngestLog(tmp_path / "gw.ingest")
    assert again.open() == entries(5)
    assert again.count == 5
    again.append(entries(1, start=5))  # appends after what it found
    again.close()
    assert IngestLog(tmp_path / "gw.ingest").open() == entries(6)


def test_a_reset_empties_the_log_and_older_blocks_behind_it_stay_unread(tmp_path: Path) -> None:
    log = IngestLog(tmp_path / "gw.ingest")
    log.open()
    for i in range(4):
        log.append(entries(2, start=2 * i))
    log.reset()
    log.append(entries(1, start=100))  # overwrites only the start of the old epoch's blocks
    log.close()
    assert IngestLog(tmp_path / "gw.ingest").open() == entries(1, start=100)
    log = IngestLog(tmp_path / "gw.ingest")
    log.open()
    log.reset()
    log.close()
    assert IngestLog(tmp_path / "gw.ingest").open() == []


def test_a_torn_block_and_what_follows_it_are_not_read(tmp_path: Path) -> None:
    path = tmp_path / "gw.ingest"
    log = IngestLog(path)
    log.open()
    log.append(entries(2))
    torn_at = log.offset
    log.append(entries(2, start=2))
    log.append(entries(2, start=4))
    log.close()
    data = bytearray(path.read_bytes())
    data[torn_at + 40] ^= 0xFF  # a power cut in the middle of the second group's write
    path.write_bytes(bytes(data))
    assert IngestLog(path).open() == entries(2)


def test_a_small_message_costs_one_sector(tmp_path: Path) -> None:
    log = IngestLog(tmp_path / "gw.ingest")
    log.open()
    before = log.bytes_written
    log.append(entries(1, size=400))
    assert log.bytes_written - before == SECTOR
    assert len(encode_block(7, entries(1, size=600))) == 2 * SECTOR


def test_a_group_that_does_not_fit_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    log = IngestLog(tmp_path / "gw.ingest", size=8 * SECTOR)
    log.open()
    log.append(entries(4, size=300))
    offset = log.offset
    with pytest.raises(LogFull):
        log.append(entries(10, size=300))
    assert log.offset == offset
    assert not log.fits(entries(10, size=300))
    log.close()
    assert IngestLog(tmp_path / "gw.ingest", size=8 * SECTOR).open() == entries(4, size=300)


class _Stage(LogStage):
    """The writer's use of the log around a real IngestLog file. The store and the MQTT client
    are stand-ins that record (the gateway-level tests below run the real ones): this is about
    which group goes to the log and which goes straight to the store."""

    def __init__(self, lg: IngestLog) -> None:
        self.cfg = SimpleNamespace(spool=SimpleNamespace(batch_s=60.0))  # type: ignore[assignment]
        self.acked: list[int] = []
        self.client = SimpleNamespace(ack=lambda mid, qos: self.acked.append(mid))  # type: ignore[assignment]
        self.generation, self.store_state, self.held = 1, "ok", []
        self.ingest_log, self.logged, self.logged_since = lg, [], 0.0
        self.stored: list[list[Incoming]] = []

    def _store(self, batch: list[Incoming], now: float) -> list[Incoming]:
        self.stored.append(batch)
        return []


def _group(first_mid: int, n: int, size: int) -> list[Incoming]:
    return [Incoming(1, first_mid + i, 1, T, b"x" * size, 1.0) for i in range(n)]


def test_a_group_bigger_than_the_whole_log_is_stored_directly_and_the_log_stays_on(
    tmp_path: Path,
) -> None:
    lg = IngestLog(tmp_path / "s.ingest", size=4 * SECTOR)
    lg.open()
    stage = _Stage(lg)
    assert stage._log_group(_group(1, 1, 100), 0.0)  # a small group: in the log, acked
    assert stage.acked == [1]
    big = _group(10, 8, 300)  # 2.4 KB: more than the log's 2 KB
    assert not stage._log_group(big, 1.0)  # the writer stores it directly (and acks it then)
    assert stage.stored == [stage.stored[0]] and len(stage.stored[0]) == 1  # the log went first
    assert stage.ingest_log is lg and lg.count == 0
    assert stage._log_group(_group(20, 1, 100), 2.0)  # the next small group: in the log again
    assert stage.acked == [1, 20] and lg.count == 1


class _Judge(Ingest):
    """Only the writer's judging of a message (the gateway-level tests run the whole writer)."""

    def __init__(self, ingest_log: IngestLog | None) -> None:
        self.m, self.ingest_log = "mostar", ingest_log

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        raise AssertionError("judging publishes nothing")

    def _housekeeping(self, now: float) -> None:
        raise AssertionError("judging does no upkeep")


@pytest.mark.parametrize("log_state", ["open", "broken"])
def test_a_message_from_the_log_is_judged_by_the_clock_it_arrived_at(
    tmp_path: Path, log_state: str
) -> None:
    # A record 30 s inside the oldest ts the gateway takes when it arrived, committed 90 s
    # later (batch_s): judged as it arrived, also when the log broke (an I/O error turns it
    # off) while the record waited in it.
    lg = IngestLog(tmp_path / "s.ingest", size=4 * SECTOR)
    lg.open()
    judge = _Judge(lg if log_state == "open" else None)
    arrived = 1_795_000_000.0
    ts = int(arrived) - TS_MAX_AGE_S + 30
    body = json.dumps(telemetry("mostar-01", 3, 7, ts)).encode()
    msg = judge._judge(Incoming(-1, 0, 1, T, body, arrived), arrived + 90)
    assert msg.ts == ts  # type: ignore[union-attr]
    # One straight from the broker is judged when it is committed, which is when it arrived.
    with pytest.raises(ProtocolError, match="ts_too_old"):
        judge._judge(Incoming(1, 5, 1, T, body, arrived + 90), arrived + 90)


def test_decoding_stops_at_garbage_and_at_another_epoch() -> None:
    a = encode_block(5, entries(1))
    b = encode_block(5, entries(1, start=1))
    old = encode_block(4, entries(1, start=9))
    epoch, got, end = decode_blocks(a + b + old + bytes(SECTOR))
    assert (epoch, got, end) == (5, entries(2), len(a) + len(b))
    assert decode_blocks(bytes(4 * SECTOR)) == (None, [], 0)
    assert decode_blocks(b"KIL1" + bytes(100))[1] == []


def test_the_file_is_made_whole_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "gw.ingest"
    log = IngestLog(path, size=64 * SECTOR)
    log.open()
    log.append(entries(1))
    log.close()
    assert path.stat().st_size == 64 * SECTOR
    inode = path.stat().st_ino
    IngestLog(path, size=64 * SECTOR).open()
    assert path.stat().st_ino == inode


# --------------------------------------------------------------------------- in the gateway
# The real gateway (a child process, as the Pi runs it) and real Mosquitto.


def _rows(store: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            return int(
                conn.execute("SELECT count(*) FROM messages WHERE kind = 'telemetry'").fetchone()[0]
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def _in_log(store: Path) -> int:
    path = store.with_name(store.name + ".ingest")
    return len(decode_blocks(path.read_bytes())[1]) if path.exists() else 0


def _broker(workdir: Path) -> Broker:
    workdir.mkdir()
    return Broker(binary=need_program("mosquitto"), workdir=workdir).start()


class Batched:
    """A gateway with `[spool] batch_s = 300` as a child process, its store and its config."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.store = tmp / "gw.sqlite"
        self.log = tmp / "gw.log"
        self.cfg = write_config(tmp / "gw.toml", "mostar", port, self.store, "")
        text = self.cfg.read_text()
        self.cfg.write_text(text.replace("[clock]", "batch_s = 300\n[clock]", 1))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_session: bool = True) -> None:
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_gateway", "run", "--config", str(self.cfg)],
                stdout=f,
                stderr=f,
            )
        ingest = self.store.with_name("gw.sqlite.ingest")
        wait_until(lambda: _rows(self.store) >= 0 and ingest.exists(), 20, what="gateway up")
        if wait_session:
            time.sleep(1.0)  # its persistent session exists before the first publish

    def publish(self, host: str, port: int, bench: str, boot: int, n: int) -> None:
        pub = Publisher(host, port)
        now = int(time.time())
        for seq in range(1, n + 1):
            pub.publish(topic_of(bench, "telemetry"), telemetry(bench, boot, seq, now - 100 + seq))
        pub.wait_published()
        pub.close()
        wait_until(lambda: _in_log(self.store) == n, 20, what=f"{n} in the log")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(30)


def test_acknowledged_messages_in_the_log_survive_sigkill_and_a_broker_that_forgot_them(
    tmp_path: Path,
) -> None:
    """batch_s = 300: the gateway acknowledges each message once it is in the log, before the
    store has it. SIGKILLed then, and restarted against a fresh broker that never saw the
    messages, it stores every one of them from the log alone, once, and receipts them."""
    broker = _broker(tmp_path / "broker-1")
    gw = Batched(tmp_path, broker.port)
    try:
        gw.start()
        gw.publish(broker.host, broker.port, "mostar-01", 4, 20)
        assert _rows(gw.store) == 0  # acknowledged, and not in the store yet
        gw.stop(signal.SIGKILL)
    finally:
        gw.stop(signal.SIGKILL)
        broker.kill()
    fresh = _broker(tmp_path / "broker-2")  # a new broker: nothing of those messages in it
    gw.cfg.write_text(gw.cfg.read_text().replace(f"port = {broker.port}", f"port = {fresh.port}"))
    watcher = Publisher(fresh.host, fresh.port)
    watcher.subscribe("klupa/v1/mostar/mostar-01/receipt")
    try:
        gw.start(wait_session=False)
        wait_until(lambda: _rows(gw.store) == 20, 30, what="the log's 20 messages in the store")

        def receipted() -> bool:
            with watcher.lock:
                got = [json.loads(p) for t, p, _ in watcher.received if t.endswith("/receipt")]
            return any(r["boots"].get("4") == [[1, 20]] for r in got)

        wait_until(receipted, 15, what="a receipt covering seq 1..20 of boot 4")
        wait_until(lambda: _in_log(gw.store) == 0, 10, what="the log emptied")
        assert gw.stop() == 0
        assert _rows(gw.store) == 20
    finally:
        watcher.close()
        gw.stop(signal.SIGKILL)
        fresh.kill()


def test_a_clean_stop_stores_what_the_log_holds(tmp_path: Path, mosquitto: Any) -> None:
    gw = Batched(tmp_path, mosquitto.port)
    try:
        gw.start()
        gw.publish(mosquitto.host, mosquitto.port, "mostar-02", 1, 5)
        assert gw.stop() == 0
    finally:
        gw.stop(signal.SIGKILL)
    assert _rows(gw.store) == 5
    assert _in_log(gw.store) == 0
