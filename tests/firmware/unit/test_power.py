# Runs under pytest and inside the MicroPython VM.
import unittest

from bench.power import PowerManager, interpolate

LIFEPO4 = {
    "capacity_ah": 40.0,
    "charge_efficiency": 0.98,
    "full_v": 13.5,
    "ocv": [
        [0, 10.0],
        [5, 12.0],
        [10, 12.8],
        [20, 12.95],
        [40, 13.15],
        [60, 13.25],
        [80, 13.3],
        [90, 13.35],
        [99, 13.45],
        [100, 13.6],
    ],
    "thresholds": {
        "saver_soc": 40.0,
        "normal_soc": 45.0,
        "critical_soc": 15.0,
        "critical_v": 12.0,
        "recover_soc": 20.0,
        "recover_v": 12.6,
    },
}


class Cell:
    # The true battery of the test: coulombs with charge efficiency, voltage from its OCV.
    def __init__(self, soc):
        self.q = soc / 100 * 40 * 3600

    def soc(self):
        return self.q / (40 * 3600) * 100

    def step(self, amps, dt):
        self.q += amps * dt * (0.98 if amps > 0 else 1.0)
        self.q = max(0.0, min(40 * 3600.0, self.q))

    def volts(self, amps):
        return interpolate([(p[0], p[1]) for p in LIFEPO4["ocv"]], self.soc()) + 0.015 * amps


class PowerTest(unittest.TestCase):
    def test_soc_tracks_a_charge_discharge_cycle_within_3_percent(self):
        cell = Cell(70)
        pm = PowerManager(LIFEPO4, soc_pct=60)  # starts 10 points wrong
        worst = 0.0
        # night discharge, rest, day charge, evening load: one second per step, 30 h
        script = [
            (-1.5, 6 * 3600),
            (-0.05, 2 * 3600),
            (6.0, 5 * 3600),
            (0.1, 3600),
            (-2.0, 6 * 3600),
            (-0.1, 4 * 3600),
            (3.0, 6 * 3600),
        ]
        t = 0
        for amps, secs in script:
            for _ in range(secs // 10):
                cell.step(amps, 10)
                pm.update(int(cell.volts(amps) * 1000), int(amps * 1000), 10000)
                t += 10
                if t > 8 * 3600:  # once the first rest has let the OCV correction act
                    worst = max(worst, abs(pm.soc_cp() / 100 - cell.soc()))
        self.assertLess(worst, 3.0)

    def test_full_charge_resets_to_100_after_three_minutes_of_tail_current(self):
        pm = PowerManager(LIFEPO4, soc_pct=90)
        for _ in range(179):
            pm.update(13550, 500, 1000)
        self.assertLess(pm.soc_cp(), 10000)
        pm.update(13550, 500, 1000)
        pm.update(13550, 500, 1000)
        self.assertEqual(pm.soc_cp(), 10000)

    def test_states_follow_the_hysteresis_of_the_protocol(self):
        pm = PowerManager(LIFEPO4, soc_pct=50)

        def at(soc, mv=13200, ma=-300):
            pm.q = int(pm.capacity * soc / 100)
            pm.low_v_ms = 0
            if ma < 0 and mv < 12000:
                pm.low_v_ms = 10000
            return pm.decide(mv)

        self.assertIsNone(at(41))
        self.assertEqual(at(39.9), ("normal", "saver"))
        self.assertIsNone(at(44.9))  # hysteresis: not back before 45 %
        self.assertEqual(at(45), ("saver", "normal"))
        self.assertEqual(at(14.9), ("normal", "critical"))
        self.assertIsNone(at(19.9, 12700))
        self.assertIsNone(at(25, 12500))  # SoC is enough but the battery is below 12.6 V
        self.assertEqual(at(20, 12600), ("critical", "saver"))
        self.assertEqual(at(30, 11900), ("saver", "critical"))  # low voltage under load

    def test_set_moves_thresholds_and_keeps_the_gap(self):
        pm = PowerManager(LIFEPO4, soc_pct=50)
        pm.set_thresholds(saver_soc=55, critical_soc=25)
        self.assertEqual(pm.th["normal_soc"], 60)
        self.assertEqual(pm.th["recover_soc"], 30)
        self.assertEqual(pm.decide(13200), ("normal", "saver"))


if __name__ == "__main__":
    unittest.main()
