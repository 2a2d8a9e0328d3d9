"""The ingest log: messages made durable in a few 512-byte sectors, acknowledged, and committed
to the SQLite store in one transaction later (``[spool] batch_s``).

Why: at idle a municipality's benches send a message every few seconds, each alone. Committed
one by one, each costs SQLite 3-4 WAL frames and an fsync, about 12 KB written to the SD card
per message (benchmarks/README.md). Here a message costs its own bytes rounded up to 512 (one
``O_DIRECT`` write, no page-cache page rewritten), and the store's pages are written once per
batch for all the messages in it.

The file (``<store>.ingest``, LOG_BYTES) is made whole once, filled with zeros, and written in
place afterwards, so an append changes no file size or extent: with ``O_DIRECT | O_DSYNC`` it
is one data write to the card. Where the file system refuses ``O_DIRECT`` (tmpfs) it falls
back to buffered writes and ``fdatasync``. The file holds blocks of whole sectors:

    magic b"KIL1" | epoch u32 | body length u32 | crc32 u32 | body (msgpack) | zeros to 512

A body is a list of ``[topic, payload, arrival time]``. After the store has committed
everything in the log, ``reset()`` writes an empty block of the next epoch at offset 0; reading
takes the blocks of the first block's epoch, in order, up to the first sector that is not one.
A block torn by a power cut fails its CRC, and its messages were never acknowledged (the
broker still has them): nothing acknowledged is lost, and nothing is read twice.
"""

from __future__ import annotations

import abc
import logging
import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt

from edge_gateway.config import Config
from edge_gateway.text import printable

log = logging.getLogger("edge_gateway")

SECTOR = 512
LOG_BYTES = 1 << 20  # 1 MiB: minutes of a municipality at idle; a bigger group skips the log
LOG_GROUP_MAX = 200  # a bigger group is a burst: SQLite's commit costs little per message then
MAGIC = b"KIL1"
_HEAD = struct.Struct("<4sIII")  # magic, epoch, body length, crc32(epoch, length, body)

Entry = tuple[str, bytes, float]  # topic, payload, arrival time (Unix seconds)


@dataclass
class Incoming:
    """A message taken from the broker. ``generation`` is the connection it came on (its ack
    goes only there); -1 for one acknowledged already (it came back from the ingest log)."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    t: float


class LogFull(Exception):
    """The group does not fit in what is left of the log: commit the log first."""


def _round_up(n: int) -> int:
    return (n + SECTOR - 1) // SECTOR * SECTOR


def _crc(epoch: int, body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(struct.pack("<II", epoch, len(body))))


def encode_block(epoch: int, entries: list[Entry]) -> bytes:
    body = msgspec.msgpack.encode([[t, p, a] for t, p, a in entries])
    raw = _HEAD.pack(MAGIC, epoch, len(body), _crc(epoch, body)) + body
    return raw + bytes(_round_up(len(raw)) - len(raw))


def decode_blocks(data: bytes) -> tuple[int | None, list[Entry], int]:
    """(epoch of the first block or None, the entries of that epoch, offset after them)."""
    epoch: int | None = None
    entries: list[Entry] = []
    off = 0
    while off + _HEAD.size <= len(data):
        magic, ep, n, crc = _HEAD.unpack_from(data, off)
        if magic != MAGIC or (epoch is not None and ep != epoch):
            break
        body = data[off + _HEAD.size : off + _HEAD.size + n]
        if len(body) != n or _crc(ep, body) != crc:
            break
        try:
            items = msgspec.msgpack.decode(body)
            got = [(str(t), bytes(p), float(a)) for t, p, a in items]
        except (msgspec.DecodeError, TypeError, ValueError):
            break
        epoch = ep
        entries.extend(got)
        off += _round_up(_HEAD.size + n)
    return epoch, entries, off


class IngestLog:
    """An append-only log of acknowledged messages not yet in the store."""

    def __init__(self, path: str | Path, size: int = LOG_BYTES) -> None:
        self.path = Path(path)
        self.size = _round_up(size)
        self.fd = -1
        self.direct = False
        self.epoch = 0
        self.offset = 0  # where the next block goes
        self.count = 0  # entries in the log since the last reset
        self.bytes_written = 0

    # -- life
    def open(self) -> list[Entry]:
        """Open (making the file when needed); returns the entries a previous run left."""
        if not self.path.exists() or self.path.stat().st_size != self.size:
            self._make()
        data = self.path.read_bytes()
        epoch, entries, end = decode_blocks(data)
        self.epoch = 0 if epoch is None else epoch
        self.offset = end
        self.count = len(entries)
        flags = os.O_RDWR | getattr(os, "O_DSYNC", 0)
        try:
            self.fd = os.open(self.path, flags | getattr(os, "O_DIRECT", 0))
            self.direct = hasattr(os, "O_DIRECT")
        except OSError:
            self.fd = os.open(self.path, flags)
            self.direct = False
        if epoch is None:
            self.reset()  # a fresh file: mark the epoch, so the log reads as empty
        return entries

    def _make(self) -> None:
        tmp = self.path.with_name(self.path.name + ".new")
        with open(tmp, "wb") as f:
            chunk = bytes(64 * 1024)
            left = self.size
            while left > 0:
                f.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- writing
    def fits(self, entries: list[Entry]) -> bool:
        return self.offset + len(encode_block(self.epoch, entries)) <= self.size

    def append(self, entries: list[Entry]) -> None:
        """Durable when this returns. LogFull when the log has no room for the group."""
        block = encode_block(self.epoch, entries)
        if self.offset + len(block) > self.size:
            raise LogFull(f"{len(block)} bytes; {self.size - self.offset} left")
        self._write(block, self.offset)
        self.offset += len(block)
        self.count += len(entries)

    def reset(self) -> None:
        """Everything in the log is in the store: start the next epoch, empty."""
        self.epoch = (self.epoch + 1) & 0xFFFFFFFF
        block = encode_block(self.epoch, [])
        self._write(block, 0)
        self.offset = len(block)
        self.count = 0

    def _write(self, block: bytes, offset: int) -> None:
        if self.direct:
            buf = mmap.mmap(-1, _round_up(len(block)) or SECTOR)  # page-aligned for O_DIRECT
            try:
                buf.write(block)
                try:
                    n = os.pwritev(self.fd, [memoryview(buf)[: len(block)]], offset)
                except OSError as e:
                    if e.errno != 22:  # EINVAL: this device wants other alignment
                        raise
                    self._buffered()
                    n = os.pwrite(self.fd, block, offset)
            finally:
                buf.close()
        else:
            n = os.pwrite(self.fd, block, offset)
        if n != len(block):
            raise OSError(28, f"short write to the ingest log ({n} of {len(block)} bytes)")
        if not self.direct and not getattr(os, "O_DSYNC", 0):
            os.fsync(self.fd)
        self.bytes_written += n

    def _buffered(self) -> None:
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDWR | getattr(os, "O_DSYNC", 0))
        self.direct = False


class LogStage(abc.ABC):
    """The writer's use of the log (``[spool] batch_s`` > 0): a small group is appended and
    acknowledged at once, and what the log holds is committed to the store when it is
    ``batch_s`` old, when the log is full, before a group too big for it, and at a stop. A
    restart commits what a previous run left in it first. While the store cannot write, no
    group goes to the log: the writer holds it unacknowledged, as without a log."""

    cfg: Config
    client: mqtt.Client
    generation: int
    store_state: str
    held: list[Incoming]
    ingest_log: IngestLog | None
    logged: list[Incoming]  # acknowledged, in the log, not yet in the store
    logged_since: float

    @abc.abstractmethod
    def _store(self, batch: list[Incoming], now: float) -> list[Incoming]:
        """Store and acknowledge a group; what is left when the store cannot write."""

    def _open_log(self) -> None:
        """Open the log, taking what a previous run left in it (committed first)."""
        path = self.cfg.spool.path + ".ingest"
        self.logged, self.logged_since = [], 0.0
        if self.cfg.spool.batch_s <= 0 and not os.path.exists(path):
            self.ingest_log = None
            return
        self.ingest_log = IngestLog(path)
        left = self.ingest_log.open()
        if left:
            log.info("the ingest log holds %d acknowledged messages: storing them first", len(left))
            self.logged = [Incoming(-1, 0, 1, t, p, a) for t, p, a in left]
        if not self.ingest_log.direct:
            log.info("the ingest log %s is written through the page cache (no O_DIRECT)", path)

    def _log_group(self, batch: list[Incoming], now: float) -> bool:
        """Make a small group durable in the log and acknowledge it; False: store it directly."""
        lg = self.ingest_log
        if lg is None or self.cfg.spool.batch_s <= 0 or self.store_state != "ok" or self.held:
            return False
        if len(batch) > LOG_GROUP_MAX:
            return False
        entries = [(i.topic, i.payload, i.t) for i in batch]
        try:
            try:
                lg.append(entries)
            except LogFull:
                if not self._flush_log(now):
                    return False
                try:
                    lg.append(entries)
                except LogFull:
                    return False  # bigger than the whole log: stored directly; the log stays on
        except OSError as exc:
            log.error(
                "the ingest log cannot be written (%s); storing each group directly", printable(exc)
            )
            self.ingest_log = None
            return False
        gen = self.generation
        for item in batch:
            if item.qos > 0 and item.generation == gen:
                self.client.ack(item.mid, item.qos)
        if not self.logged:
            self.logged_since = now
        self.logged.extend(Incoming(-1, 0, i.qos, i.topic, i.payload, i.t) for i in batch)
        return True

    def _log_due(self, now: float, stop: bool) -> bool:
        return bool(self.logged) and (stop or now - self.logged_since >= self.cfg.spool.batch_s)

    def _flush_log(self, now: float, then: list[Incoming] | None = None) -> bool:
        """Commit what the log holds (and ``then``, after it, in order); True when all is in."""
        batch = self.logged + (then or [])
        self.logged = []
        self.held = self._store(batch, now) if batch else []
        self._logged_stored()
        return not self.held

    def _logged_stored(self) -> None:
        """After a commit: empty the log once nothing of it is left unstored."""
        lg = self.ingest_log
        if lg is None or lg.count == 0 or self.logged:
            return
        if any(i.generation < 0 for i in self.held):
            return
        try:
            lg.reset()
        except OSError as exc:
            log.error(
                "the ingest log cannot be reset (%s); storing each group directly", printable(exc)
            )
            lg.close()
            self.ingest_log = None
