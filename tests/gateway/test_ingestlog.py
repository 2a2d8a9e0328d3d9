"""The ingest log on its own: what is appended is read back after a restart, in order; a reset
empties it; a torn block and everything after it is not read; a full log says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_gateway.ingestlog import SECTOR, IngestLog, LogFull, decode_blocks, encode_block

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
