# The spool's rare work, kept out of the resident set: recovery at boot (scan every
# segment, skip damage, drop copies compaction left) and making room when the spool is full
# (drop the oldest telemetry, keep unreceipted events, votes and acks). bench.spool imports
# this module for the job and drops it afterwards.
import os

from bench import spool as sp
from bench import store


def recover(spool):
    ids = []
    for name in os.listdir(spool.dir):
        if name.endswith(".seg"):
            try:
                ids.append(int(name[:-4]))
            except ValueError:
                pass
    ids.sort()
    seen = {}
    for sid in ids:
        seg = sp.Segment(sid)
        good = 0
        size = 0
        for rec, _ in spool.scan(sid):
            key = (rec.boot, rec.seq)
            if key in seen:  # a copy made by compaction before the original went
                continue
            seen[key] = 1
            seg.add(rec, len(rec.body) + sp.OVERHEAD)
            good += len(rec.body) + sp.OVERHEAD
        try:
            size = os.stat(spool.path_of(sid))[6]
        except OSError:
            pass
        seg.size = size
        spool.damaged += size - good
        if seg.n_tel + seg.n_other:
            spool.segments.append(seg)
        else:
            spool.drop_segment(sid)
    raw = store.load(spool.dir + "/acked.json", {})
    try:
        for k in raw:
            spool.acked[int(k)] = [[int(a), int(b)] for a, b in raw[k]]
    except (OSError, ValueError, TypeError):
        spool.acked = {}
    last = spool.segments[-1].id if spool.segments else (ids[-1] if ids else 0)
    spool.segments.append(sp.Segment(last + 1))  # never append after a possibly torn tail


def make_room(spool):
    while spool.used() > spool.capacity and len(spool.segments) > 1:
        victim = None
        for seg in spool.segments[:-1]:
            if seg.n_tel:
                victim = seg
                break
        keep_other = victim is not None
        if victim is None:
            victim = spool.segments[0]
        _compact(spool, victim, keep_other)


def _compact(spool, seg, keep_other):
    # Copies what must survive (unreceipted events, votes and acks) to the head, then
    # deletes the segment. A crash in between leaves duplicates, which recovery drops.
    survivors = []
    if keep_other:
        for rec, _ in spool.scan(seg.id):
            if rec.kind != sp.KIND_TELEMETRY and not spool.is_acked(rec.boot, rec.seq):
                survivors.append(rec)
    for boot in seg.runs:
        for lo, hi in seg.runs[boot]:
            for s in range(lo, hi + 1):
                if not spool.is_acked(boot, s):
                    spool.dropped += 1
    spool.dropped -= len(survivors)
    spool.segments.remove(seg)
    head = spool.segments[-1]
    if survivors:
        if head.size:
            head = sp.Segment(head.id + 1)
            spool.segments.append(head)
        with open(spool.path_of(head.id), "ab") as f:
            for rec in survivors:
                data = sp.encode(rec)
                f.write(data)
                head.add(rec, len(data))
    spool.drop_segment(seg.id)
