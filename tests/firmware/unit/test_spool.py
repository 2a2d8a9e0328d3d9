# Runs under pytest and inside the MicroPython VM: unittest and firmware modules only.
import os
import random
import unittest

from bench import spool as sp
from scratch import fresh


def rec(seq, kind=sp.KIND_TELEMETRY, boot=7, size=60):
    return sp.Record(kind, boot, seq, 1795712460 + seq, 0, bytes([seq % 251]) * size)


def decode_all(data):
    # Every intact record in data, as recovery reads a segment file (bench.spool.parse).
    pos = [0]

    def read(n):
        c = data[pos[0] : pos[0] + n]
        pos[0] += len(c)
        return c

    return [r for r, _ in sp.parse(read)]


def seg_files(root):
    return sorted(n for n in os.listdir(root + "/spool") if n.endswith(".seg"))


class SpoolTest(unittest.TestCase):
    def test_records_survive_a_restart_in_order(self):
        root = fresh("spool-restart")
        s = sp.Spool(root)
        for i in range(1, 11):
            s.append(rec(i))
        s2 = sp.Spool(root)
        got = [(r.boot, r.seq, r.body) for r in s2.records()]
        self.assertEqual(got, [(7, i, rec(i).body) for i in range(1, 11)])

    def test_receipt_removes_covered_records_and_survives_restart(self):
        root = fresh("spool-ack")
        s = sp.Spool(root, segment_bytes=400)
        for i in range(1, 21):
            s.append(rec(i))
        s.ack({7: [[1, 12], [15, 15]]})
        self.assertEqual([r.seq for r in s.records()], [13, 14, 16, 17, 18, 19, 20])
        s2 = sp.Spool(root, segment_bytes=400)
        self.assertEqual([r.seq for r in s2.records()], [13, 14, 16, 17, 18, 19, 20])
        s2.ack({7: [[13, 20]]})
        self.assertEqual(s2.records(), [])
        self.assertEqual(seg_files(root), [])

    def test_torn_last_record_at_every_byte_offset_loses_only_that_record(self):
        root = fresh("spool-torn")
        s = sp.Spool(root)
        for i in range(1, 4):
            s.append(rec(i))
        path = root + "/spool/" + seg_files(root)[0]
        with open(path, "rb") as f:
            full = f.read()
        last = len(sp.encode(rec(3)))
        for cut in range(len(full) - last, len(full)):
            with open(path, "wb") as f:
                f.write(full[:cut])
            again = sp.Spool(root)
            self.assertEqual([r.seq for r in again.records()], [1, 2], "cut at " + str(cut))
            # appending after recovery is safe: the new record is read back too
            again.append(rec(9))
            self.assertEqual([r.seq for r in sp.Spool(root).records()], [1, 2, 9])
            for n in seg_files(root):
                if root + "/spool/" + n != path:
                    os.remove(root + "/spool/" + n)

    def test_random_bit_flips_lose_only_the_hit_record(self):
        random.seed(5)
        data = b"".join(sp.encode(rec(i)) for i in range(1, 31))
        size = len(sp.encode(rec(1)))
        for _ in range(150):
            bit = random.getrandbits(16) % (len(data) * 8)
            damaged = bytearray(data)
            damaged[bit // 8] ^= 1 << (bit % 8)
            hit = bit // 8 // size + 1
            got = [r.seq for r in decode_all(bytes(damaged))]
            self.assertEqual(got, [i for i in range(1, 31) if i != hit])

    def test_garbage_between_records_is_skipped(self):
        data = sp.encode(rec(1)) + b"\xa5\x01\xff" + b"junk" * 50 + sp.encode(rec(2))
        self.assertEqual([r.seq for r in decode_all(data)], [1, 2])

    def test_full_spool_drops_oldest_telemetry_and_keeps_events(self):
        root = fresh("spool-full")
        cap = 6000
        s = sp.Spool(root, capacity=cap, segment_bytes=1000)
        seq = 0
        events = []
        for i in range(200):
            seq += 1
            if i % 10 == 3:
                s.append(rec(seq, sp.KIND_EVENT, size=30))
                events.append(seq)
            else:
                s.append(rec(seq))
            self.assertLessEqual(s.used(), cap + 1000)
        kept = sp.Spool(root, capacity=cap, segment_bytes=1000).records()
        seqs = [r.seq for r in kept]
        for e in events:
            self.assertIn(e, seqs)
        tel = [r.seq for r in kept if r.kind == sp.KIND_TELEMETRY]
        self.assertTrue(tel)
        # what is kept of telemetry is the newest: everything from the oldest kept on
        self.assertEqual(tel, [q for q in range(tel[0], 201) if q not in events])
        self.assertGreater(s.dropped, 0)

    def test_events_go_only_when_no_telemetry_is_left(self):
        root = fresh("spool-events")
        s = sp.Spool(root, capacity=3000, segment_bytes=800)
        for i in range(1, 101):
            s.append(rec(i, sp.KIND_EVENT, size=40))
        seqs = [r.seq for r in s.records()]
        self.assertLess(len(seqs), 100)
        self.assertEqual(seqs, list(range(seqs[0], 101)))

    def test_seven_days_of_minute_telemetry_fit_in_one_mebibyte(self):
        per = len(sp.encode(rec(1, size=62)))
        self.assertLessEqual(per, 100)
        self.assertGreaterEqual(1048576 // per, 7 * 24 * 60)


if __name__ == "__main__":
    unittest.main()
