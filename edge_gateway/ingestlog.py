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

import mmap
import os
import struct
import zlib
from pathlib import Path

import msgspec

SECTOR = 512
LOG_BYTES = 1 << 20  # 1 MiB: minutes of a municipality at idle; a bigger group skips the log
MAGIC = b"KIL1"
_HEAD = struct.Struct("<4sIII")  # magic, epoch, body length, crc32(epoch, length, body)

Entry = tuple[str, bytes, float]  # topic, payload, arrival time (Unix seconds)


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
