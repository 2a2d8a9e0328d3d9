# Runs under pytest and inside the MicroPython VM.
import unittest

from bench.session import Session


def feed(s, ma, seconds, mv=5000):
    ends = []
    for _ in range(seconds):
        e = s.update(mv, ma, 1000)
        if e:
            ends.append(e)
    return ends


class SessionTest(unittest.TestCase):
    def test_plug_needs_three_seconds_above_50_ma(self):
        s = Session(1)
        feed(s, 60, 2)
        self.assertFalse(s.plugged)
        feed(s, 10, 1)
        feed(s, 60, 2)
        self.assertFalse(s.plugged)
        feed(s, 60, 1)
        self.assertTrue(s.plugged)

    def test_trickle_below_20_ma_for_under_10_s_keeps_the_session(self):
        s = Session(1)
        feed(s, 1000, 100)
        self.assertEqual(feed(s, 10, 9), [])
        feed(s, 30, 5)  # a phone trickling at 30 mA is still plugged
        self.assertTrue(s.plugged)

    def test_unplug_after_ten_seconds_gives_duration_and_energy(self):
        s = Session(2)
        feed(s, 1000, 600)  # 10 min at 5 V 1 A = 0.8333 Wh
        ends = feed(s, 0, 10)
        self.assertEqual(len(ends), 1)
        secs, mwh = ends[0]
        self.assertEqual(secs, 600)
        self.assertEqual(mwh, 833)
        self.assertFalse(s.plugged)

    def test_switching_the_port_off_ends_the_session(self):
        s = Session(3)
        feed(s, 500, 60)
        self.assertEqual(s.end(), (60, 42))
        self.assertIsNone(s.end())


if __name__ == "__main__":
    unittest.main()
