# Runs under pytest and inside the MicroPython VM: the last unhandled exception kept in flash
# (bench.fault) and told once after the next boot, in a `fault` detail of at most 120 chars.
import json
import unittest

from bench import fault
from scratch import fresh


def inner():
    raise ValueError("boom: the bus answered 0xFF")


def outer():
    inner()


class FakeApp:
    def __init__(self, root):
        self.root = root
        self.state = {}
        self.events = []

    def record_event(self, type_, fields):
        self.events.append((type_, fields))

    def save_state(self):
        pass


class FaultTest(unittest.TestCase):
    def test_a_crash_is_kept_then_reported_once_with_what_and_where(self):
        root = fresh("fault")
        try:
            outer()
        except ValueError as e:
            fault.keep(root, e)
        with open(root + "/fault.json") as f:
            kept = json.load(f)
        self.assertIn("inner", kept["trace"])
        app = FakeApp(root)
        fault.report(app)
        self.assertEqual(len(app.events), 1)
        kind, fields = app.events[0]
        self.assertEqual((kind, fields["code"]), ("fault", "crash"))
        detail = fields["detail"]
        self.assertTrue(detail.startswith("ValueError: boom: the bus answered 0xFF @ "), detail)
        self.assertIn("test_fault.py:", detail)
        self.assertIn(" inner < ", detail)  # innermost first, then its caller
        self.assertLessEqual(len(detail), 120)
        self.assertEqual(app.state["last_fault"], detail)
        fault.report(app)  # told once
        self.assertEqual(len(app.events), 1)

    def test_a_long_message_is_cut_to_120_chars(self):
        text = 'Traceback (most recent call last):\n  File "bench/app.py", line 9, in f\n'
        text += "OSError: " + "x" * 300 + "\n"
        self.assertEqual(len(fault.summary(text)), 120)
        self.assertEqual(fault.summary(""), "?")


if __name__ == "__main__":
    unittest.main()
