# Runs under pytest and inside the MicroPython VM.
import unittest

from bench.window import Channel, Window


class WindowTest(unittest.TestCase):
    def test_a_day_of_one_second_increments_sums_exactly(self):
        # 13.2 V at 0.257 A for 86400 one-second samples, with jittered tick lengths that
        # still add up to exactly one day: integer sums lose nothing.
        c = Channel()
        total_ms = 0
        for i in range(86400):
            dt = 1000 + (1 if i % 2 else -1)
            c.add(13200, 257, dt)
            total_ms += dt
        self.assertEqual(total_ms, 86400000)
        self.assertEqual(c.nj, 13200 * 257 * 86400000)
        self.assertEqual(c.mwh(), 81418)  # 13.2 V * 0.257 A * 24 h = 81.4176 Wh
        self.assertEqual(c.avg_mv(), 13200)
        self.assertEqual(c.avg_ma(), 257)

    def test_energy_of_a_ramp_matches_the_analytic_integral(self):
        # current rises linearly 0 -> 2 A over one hour at 18 V: E = 18 * 1 A avg * 1 h = 18 Wh
        c = Channel()
        for s in range(3600):
            ma = (2 * s + 1) * 1000 // 3600  # the ramp's midpoint in each second
            c.add(18000, ma, 1000)
        self.assertLess(abs(c.mwh() - 18000), 18)  # within 0.1 %

    def test_energy_uses_elapsed_ticks_not_the_nominal_period(self):
        a, b = Channel(), Channel()
        a.add(5000, 1000, 1000)
        b.add(5000, 1000, 1700)  # a late sample covers more time
        self.assertEqual(b.nj * 1000, a.nj * 1700)

    def test_telemetry_counts_seat_seconds_and_caps_at_period(self):
        w = Window([1, 2])
        w.reset(0)
        w.occ_ms = 61400
        w.touches = 3
        t = w.telemetry(60, 7850, "normal", 40000, {1: True, 2: False})
        self.assertEqual(t["occ"], 60)
        self.assertEqual(t["touches"], 3)
        self.assertEqual([p[0] for p in t["ports"]], [1, 2])
        self.assertEqual([p[1] for p in t["ports"]], [True, False])


if __name__ == "__main__":
    unittest.main()
