# The flash spool: every record is appended here before it is published and leaves only
# when a gateway Receipt covers it (docs/protocol.md, Delivery guarantees).
#
# Layout under <root>/spool/: segment files NNNNNNNN.seg, append-only, and acked.json (the
# receipted seq ranges per boot of records still on flash, replaced atomically by rename).
# A record on flash:
#   0 magic 0xA5 | 1 kind | 2-3 body length (LE) | 4-7 boot | 8-11 seq | 12-15 stamp
#   16 flags (bit 0: stamp is uptime seconds, the clock was not set) | body | CRC-32 of all before
# Recovery scans each segment and resynchronises on the next magic byte whose CRC checks, so a
# torn tail or a flipped bit costs only the record it hits. Every boot starts a new segment.
import os
import struct

try:
    from binascii import crc32
except ImportError:  # pragma: no cover - every supported port has it
    crc32 = None  # type: ignore[assignment]

from bench import store
from bench.runtime import const, job

_MAGIC = const(0xA5)
_HEADER = const(17)
OVERHEAD = const(21)
FLAG_UPTIME = const(1)

# The kinds of record, as the kind byte says.
KIND_TELEMETRY, KIND_EVENT, KIND_VOTE, KIND_ACK = 1, 2, 3, 4


class Record:
    # One record: its identity (kind, boot, seq), its stamp in seconds (wall clock, or uptime
    # under FLAG_UPTIME), the body it publishes, and the segment it was read from (0: new).
    def __init__(self, kind, boot, seq, stamp, flags, body, seg=0):
        self.kind, self.boot, self.seq = kind, boot, seq
        self.stamp, self.flags = stamp, flags
        self.body, self.seg = body, seg


def encode(rec):
    head = struct.pack(
        "<BBHIIIB", _MAGIC, rec.kind, len(rec.body), rec.boot, rec.seq, rec.stamp, rec.flags
    )
    crc = crc32(rec.body, crc32(head)) & 0xFFFFFFFF
    return head + rec.body + struct.pack("<I", crc)


_MAX_BODY = const(2048)


def parse(read, base=0, seg=0):
    # Yields (record, end offset) for every intact record in a stream read by read(n),
    # skipping damage byte by byte; base is the stream's offset in its file.
    buf = b""
    eof = False
    i = 0
    while True:
        if not eof and len(buf) - i < 512:
            chunk = read(512)
            if chunk:
                buf = buf[i:] + chunk
                base += i
                i = 0
            else:
                eof = True
        n = len(buf)
        if i >= n:
            return
        if buf[i] != _MAGIC:
            i += 1
            continue
        if n - i < OVERHEAD:
            if eof:
                i += 1
            continue
        blen = buf[i + 2] | (buf[i + 3] << 8)
        end = i + _HEADER + blen
        if blen > _MAX_BODY:
            i += 1
            continue
        if end + 4 > n:
            if eof:
                i += 1
            else:
                chunk = read(end + 4 - n)
                if chunk:
                    buf += chunk
                else:
                    eof = True
            continue
        mv = memoryview(buf)
        if crc32(mv[i:end]) & 0xFFFFFFFF != struct.unpack_from("<I", buf, end)[0]:
            i += 1
            continue
        kind, _, boot, seq, stamp, flags = struct.unpack_from("<BHIIIB", buf, i + 1)
        yield (
            Record(kind, boot, seq, stamp, flags, bytes(mv[i + _HEADER : end]), seg),
            base + end + 4,
        )
        i = end + 4


def _merge(ranges, lo, hi):
    # Insert [lo, hi] into sorted, disjoint, non-adjacent ranges.
    out = []
    placed = False
    for a, b in ranges:
        if b + 1 < lo:
            out.append([a, b])
        elif hi + 1 < a:
            if not placed:
                out.append([lo, hi])
                placed = True
            out.append([a, b])
        else:
            lo = a if a < lo else lo
            hi = b if b > hi else hi
    if not placed:
        out.append([lo, hi])
    return out


def covered(ranges, seq):
    for a, b in ranges:
        if a <= seq <= b:
            return True
    return False


class Segment:
    # What the spool remembers about a segment without reading it: size and, per boot,
    # the runs of seq it holds, with counts of telemetry and other records.
    def __init__(self, sid):
        self.id = sid
        self.size = 0
        self.runs = {}  # boot -> [[lo, hi], ...]
        self.n_tel = 0
        self.n_other = 0

    def add(self, rec, size):
        self.size += size
        self.runs[rec.boot] = _merge(self.runs.get(rec.boot, []), rec.seq, rec.seq)
        if rec.kind == KIND_TELEMETRY:
            self.n_tel += 1
        else:
            self.n_other += 1


class Spool:
    def __init__(self, root, capacity=1048576, segment_bytes=16384):
        self.dir = root.rstrip("/") + "/spool"
        self.capacity = capacity
        self.segment_bytes = segment_bytes
        self.segments = []  # oldest first; the last is the head being appended to
        self.acked = {}  # boot -> ranges
        self.dropped = 0  # records dropped for space, since boot
        self.damaged = 0  # bytes skipped at recovery
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        job("spoolmaint", "recover", self)

    # -- files
    def path_of(self, sid):
        return self.dir + "/%08d.seg" % sid

    def scan(self, sid, offset=0):
        # Records of one segment from offset on, as (record, end offset); nothing if it is gone.
        try:
            f = open(self.path_of(sid), "rb")
        except OSError:
            return
        try:
            if offset:
                f.seek(offset)
            for item in parse(f.read, offset, sid):
                yield item
        finally:
            f.close()

    def drop_segment(self, sid):
        try:
            os.remove(self.path_of(sid))
        except OSError:
            pass

    # -- state
    def used(self):
        s = 0
        for seg in self.segments:
            s += seg.size
        return s

    def is_acked(self, boot, seq):
        r = self.acked.get(boot)
        return r is not None and covered(r, seq)

    def pending(self):
        # Number of records on flash that no receipt covers.
        n = 0
        for seg in self.segments:
            for boot in seg.runs:
                acked = self.acked.get(boot, [])
                for lo, hi in seg.runs[boot]:
                    for s in range(lo, hi + 1):
                        if not covered(acked, s):
                            n += 1
        return n

    # -- writing
    def append(self, rec):
        data = encode(rec)
        head = self.segments[-1]
        if head.size and head.size + len(data) > self.segment_bytes:
            head = Segment(head.id + 1)
            self.segments.append(head)
        with open(self.path_of(head.id), "ab") as f:
            f.write(data)
        head.add(rec, len(data))
        if self.used() > self.capacity:
            job("spoolmaint", "make_room", self)

    # -- receipts
    def ack(self, boots):
        # boots: {boot: [[lo, hi], ...]} from a Receipt. Returns True if anything changed.
        changed = False
        for boot in boots:
            r = self.acked.get(boot, [])
            for lo, hi in boots[boot]:
                if lo > hi:
                    continue
                if not _range_covered(r, lo, hi):
                    changed = True
                    r = _merge(r, lo, hi)
            self.acked[boot] = r
        if changed:
            self._release()
        return changed

    def _release(self):
        head = self.segments[-1]
        for seg in self.segments[:-1]:
            done = True
            for boot in seg.runs:
                acked = self.acked.get(boot, [])
                for lo, hi in seg.runs[boot]:
                    if not _range_covered(acked, lo, hi):
                        done = False
            if done:
                self.segments.remove(seg)
                self.drop_segment(seg.id)
        if head.size and (head.n_tel or head.n_other):
            done = True
            for boot in head.runs:
                for lo, hi in head.runs[boot]:
                    if not _range_covered(self.acked.get(boot, []), lo, hi):
                        done = False
            if done:  # start a fresh head so the finished one can go
                self.segments.remove(head)
                self.drop_segment(head.id)
                self.segments.append(Segment(head.id + 1))
        self._save_acked()

    def _save_acked(self):
        # Keep ranges only for boots still on flash: the file stays small.
        live = {}
        for seg in self.segments:
            for boot in seg.runs:
                live[boot] = 1
        out = {}
        for boot in self.acked:
            if boot in live:
                out[str(boot)] = self.acked[boot]
        self.acked = {}
        for k in out:
            self.acked[int(k)] = out[k]
        store.save(self.dir + "/acked.json", out)

    # -- reading for the link
    def read_batch(self, cursor, limit):
        # Up to limit unreceipted records from cursor (segment id, offset) on, oldest first,
        # and the cursor after them. Opens and closes its files: safe across awaits.
        sid, off = cursor
        out = []
        for seg in self.segments[:]:
            if seg.id < sid:
                continue
            start = off if seg.id == sid else 0
            for rec, end in self.scan(seg.id, start):
                cursor = (seg.id, end)
                if not self.is_acked(rec.boot, rec.seq):
                    out.append(rec)
                    if len(out) >= limit:
                        return out, cursor
            cursor = (seg.id + 1, 0)
        return out, cursor

    def records(self):
        # Every unreceipted record, oldest first (tests and tools).
        out, _ = self.read_batch((0, 0), 1 << 30)
        return out


def _range_covered(ranges, lo, hi):
    for a, b in ranges:
        if a <= lo and hi <= b:
            return True
    return False
