# Runs under pytest and inside the MicroPython VM: safe mode's bookkeeping (bench.health).
import unittest

from bench import health, store
from scratch import fresh

PWRON, HARD, WDT = 1, 2, 3


def boots(st, causes, ota=""):
    # One boot per reset cause (the cause of the reset that started it); -> each boot's mode.
    out = []
    for c in causes:
        out.append(health.count(st, c == PWRON, ota == "rolled_back"))
    return out


class HealthTest(unittest.TestCase):
    def test_three_failed_boots_give_safe_mode_on_the_fourth(self):
        st = {}
        self.assertEqual(boots(st, [PWRON, HARD, WDT, HARD]), [False, False, False, True])
        self.assertEqual(st["unhealthy"], 3)
        self.assertTrue(st["safe"])

    def test_a_healthy_boot_starts_the_count_again(self):
        st = {}
        boots(st, [PWRON, HARD])
        health.healthy(st)
        self.assertEqual(boots(st, [HARD, WDT, HARD]), [False, False, False])
        self.assertEqual(boots(st, [HARD]), [True])

    def test_boots_cut_by_power_loss_are_not_held_against_the_app(self):
        st = {}
        self.assertEqual(boots(st, [PWRON] * 8), [False] * 8)
        self.assertEqual(st["unhealthy"], 1)  # only the boot running now

    def test_a_rolled_back_trial_boot_is_not_the_running_apps_failure(self):
        st = {}
        boots(st, [PWRON, HARD])  # two failed boots of the running app
        # the trial app's boot fails (counted), the next boot rolls it back: not counted
        self.assertFalse(health.count(st, False, False))
        self.assertFalse(health.count(st, False, True))
        self.assertEqual(st["unhealthy"], 3)
        self.assertTrue(health.count(st, False, False))

    def test_safe_mode_retries_after_1_h_then_2_4_up_to_24_h(self):
        st = {}
        boots(st, [PWRON, HARD, HARD, HARD])
        waits = []
        for _ in range(8):
            spent = 0
            while not health.safe_time(st, 300):
                spent += 300
            waits.append(spent + 300)
            # the retry: a normal boot, which fails again
            self.assertEqual(boots(st, [HARD]), [False])
            self.assertEqual(boots(st, [WDT]), [True])
        self.assertEqual(waits, [3600, 7200, 14400, 28800, 57600, 86400, 86400, 86400])

    def test_a_retry_cut_by_power_loss_is_tried_again(self):
        st = {}
        boots(st, [PWRON, HARD, HARD, HARD])
        while not health.safe_time(st, 600):
            pass
        self.assertEqual(boots(st, [HARD, PWRON]), [False, False])  # the retry, then again
        health.healthy(st)  # the retry became healthy: normal mode, and the next wait is 1 h
        self.assertEqual(st["unhealthy"], 0)
        self.assertNotIn("wait", st)
        self.assertEqual(boots(st, [HARD, HARD, HARD, HARD]), [False, False, False, True])

    def test_a_new_app_sent_to_a_bench_in_safe_mode_gets_a_normal_boot(self):
        root = fresh("health")
        st = {}
        boots(st, [PWRON, HARD, HARD, HARD])  # in safe mode now
        store.save(root + "/state.json", st)
        self.assertFalse(health.boot(root, HARD, "switched"))  # the fix, on trial
        self.assertTrue(health.boot(root, HARD, ""))  # without a new app: still safe mode

    def test_safe_time_adds_up_across_boots_of_safe_mode(self):
        st = {}
        boots(st, [PWRON, HARD, HARD, HARD])
        self.assertFalse(health.safe_time(st, 1800))
        self.assertEqual(boots(st, [PWRON]), [True])  # a power cut in safe mode
        self.assertFalse(health.safe_time(st, 1500))
        self.assertTrue(health.safe_time(st, 300))


if __name__ == "__main__":
    unittest.main()
