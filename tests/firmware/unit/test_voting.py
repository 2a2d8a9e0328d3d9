# Vote rules: open window, pad-to-option mapping, cooldown, hourly cap, poll persistence,
# malformed and oversized polls. Runs under pytest (CPython) and inside the MicroPython VM.
import json
import os
import sys
import unittest

if sys.implementation.name != "micropython":
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "firmware"))

from bench import voting
from bench.voting import Voting, languages

OPENS = 1795651000
CLOSES = 1798243000


def poll_payload(**over):
    p = {
        "v": 1,
        "id": "mostar-2026-park-lights",
        "opens": OPENS,
        "closes": CLOSES,
        "question": {
            "bs": "Da li želite više rasvjete u parku?",
            "en": "More light?",
            "sr": "Да ли желите више расвјете?",
        },
        "options": [
            {"id": "yes", "label": {"bs": "Da", "en": "Yes"}},
            {"id": "no", "label": {"bs": "Ne", "en": "No"}},
            {"id": "maybe", "label": {"bs": "Možda", "en": "Maybe"}},
        ],
    }
    for k in over:
        p[k] = over[k]
    return json.dumps(p).encode()


def _tmpdir():
    if sys.implementation.name != "micropython":
        import tempfile

        return tempfile.mkdtemp()
    n = 0
    while True:
        d = "vote" + str(n)  # relative: the VM runner cannot rename inside /tmp
        try:
            os.mkdir(d)
            return d
        except OSError:
            n += 1


class Booth:
    # A Voting with a settable clock, collecting what it records.
    def __init__(self, path=None, settings=None):
        self.path = path or _tmpdir() + "/poll.json"
        self.ts = OPENS + 100
        self.ms = 5000
        self.votes = []
        self.faults = []
        self.settings = settings if settings is not None else {}
        self.boot()

    def boot(self):
        self.v = Voting(
            self.path,
            lambda: self.ts,
            lambda: self.ms,
            lambda poll, choice: self.votes.append((poll, choice)),
            lambda code, detail: self.faults.append((code, detail)),
            self.settings,
        )

    def wait(self, s):
        self.ts += s
        self.ms += s * 1000


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


class PollHandling(unittest.TestCase):
    def test_valid_poll_is_taken_and_survives_a_reboot(self):
        b = Booth()
        self.assertTrue(b.v.on_poll(poll_payload()))
        b.boot()
        self.assertEqual(b.v.poll["id"], "mostar-2026-park-lights")
        self.assertEqual(b.faults, [])

    def test_the_poll_rules_are_dropped_after_each_check(self):
        # bench.pollcheck is imported for a check and leaves again (docs/firmware.md, Heap)
        b = Booth()
        self.assertTrue(b.v.on_poll(poll_payload()))
        self.assertFalse(b.v.on_poll(poll_payload(closes=OPENS)))  # checked, and refused
        self.assertNotIn("bench.pollcheck", sys.modules)
        self.assertFalse(hasattr(sys.modules.get("bench"), "pollcheck"))

    def test_the_same_retained_poll_again_changes_nothing(self):
        b = Booth()
        b.v.on_poll(poll_payload())
        self.assertFalse(b.v.on_poll(poll_payload()))

    def test_null_id_poll_closes_and_forgets_it_across_reboot(self):
        b = Booth()
        b.v.on_poll(poll_payload())
        self.assertTrue(b.v.on_poll(b'{"v":1,"id":null}'))
        self.assertIsNone(b.v.poll)
        self.assertEqual(b.v.press(0), (voting.CLOSED, -1))
        self.assertFalse(_exists(b.path))
        b.boot()
        self.assertIsNone(b.v.poll)

    def test_empty_retained_payload_keeps_the_stored_poll(self):
        b = Booth()
        b.v.on_poll(poll_payload())
        self.assertFalse(b.v.on_poll(b""))
        self.assertIsNotNone(b.v.poll)

    def test_malformed_polls_are_ignored_with_a_fault_and_the_previous_stays(self):
        b = Booth()
        b.v.on_poll(poll_payload())
        bad = [
            b"{not json",
            b"[1,2]",
            poll_payload(v=2),
            poll_payload(id="Bad Id"),
            poll_payload(opens="soon"),
            poll_payload(closes=OPENS),
            poll_payload(question={"en": "no Bosnian"}),
            poll_payload(question={"bs": "x" * 201}),
            poll_payload(options=[{"id": "yes", "label": {"bs": "Da"}}]),
            poll_payload(options=[{"id": "o" + str(i), "label": {"bs": "x"}} for i in range(5)]),
            poll_payload(
                options=[{"id": "a", "label": {"bs": "y" * 25}}, {"id": "b", "label": {"bs": "n"}}]
            ),
            poll_payload(
                options=[{"id": "a", "label": {"bs": "Da"}}, {"id": "a", "label": {"bs": "Ne"}}]
            ),
            poll_payload(opens=True),
            poll_payload(closes=None),
            poll_payload(closes="INF").replace(b'"INF"', b"1e999"),  # json: inf
            poll_payload(opens=-1),  # the gateway and the portal refuse times outside 0..2**53
            poll_payload(closes=1e300),
        ]
        for payload in bad:
            self.assertFalse(b.v.on_poll(payload), payload)
        self.assertEqual(len(b.faults), len(bad))
        for code, detail in b.faults:
            self.assertEqual(code, "poll_invalid")
            self.assertTrue(len(detail) <= 120)
        self.assertEqual(b.v.poll["id"], "mostar-2026-park-lights")
        b.boot()
        self.assertEqual(b.v.poll["id"], "mostar-2026-park-lights")

    def test_oversized_poll_is_refused_with_a_fault(self):
        b = Booth()
        b.v.on_poll(poll_payload())
        big = poll_payload(padding="x" * 4100)
        self.assertTrue(len(big) > 4096)
        self.assertFalse(b.v.on_poll(big))
        self.assertEqual(b.faults[0][0], "poll_invalid")
        self.assertIn("4096", b.faults[0][1])
        self.assertEqual(b.v.poll["options"][0]["id"], "yes")

    def test_unknown_fields_and_float_integers_are_accepted(self):
        b = Booth()
        self.assertTrue(b.v.on_poll(poll_payload(opens=float(OPENS), extra={"x": 1})))

    def test_fractional_times_are_accepted_and_judged_as_numbers(self):
        # opens/closes are floats by docs/protocol.md's number rule. (An ESP32's floats are single
        # precision, so there a fraction is read to within a couple of minutes; the host and
        # the VM have doubles.)
        b = Booth()
        b.ts = OPENS
        self.assertTrue(b.v.on_poll(poll_payload(opens=OPENS + 0.5, closes=OPENS + 2.5)))
        self.assertFalse(b.v.is_open())
        for ts, want in ((OPENS + 1, True), (OPENS + 2, True), (OPENS + 3, False)):
            b.ts = ts
            self.assertEqual(b.v.is_open(), want, ts)
        self.assertEqual(b.faults, [])

    def test_a_torn_stored_poll_is_dropped_at_boot(self):
        b = Booth()
        with open(b.path, "wb") as f:
            f.write(poll_payload()[:50])
        b.boot()
        self.assertIsNone(b.v.poll)
        self.assertEqual(b.faults[0][0], "poll_invalid")

    def test_languages_cycle_bosnian_first(self):
        b = Booth()
        b.v.on_poll(poll_payload())
        self.assertEqual(languages(b.v.poll), ["bs", "sr", "en"])
        self.assertEqual(languages(None), ["bs"])


class Votes(unittest.TestCase):
    def booth(self, **settings):
        b = Booth(settings=settings)
        b.v.on_poll(poll_payload())
        return b

    def test_pads_map_to_options_in_order(self):
        b = self.booth(cooldown=0)
        for pad in (2, 0, 1):
            self.assertEqual(b.v.press(pad), (voting.VOTED, pad))
            b.wait(4)
        self.assertEqual([c for _, c in b.votes], ["maybe", "yes", "no"])
        self.assertEqual(b.votes[0][0], "mostar-2026-park-lights")

    def test_pad_beyond_the_options_is_no_vote(self):
        b = self.booth()
        self.assertEqual(b.v.press(3), (voting.NO_OPTION, -1))
        self.assertEqual(b.votes, [])

    def test_votes_only_while_open_by_the_bench_clock(self):
        b = self.booth(cooldown=0)
        b.ts = OPENS - 1
        self.assertEqual(b.v.press(0)[0], voting.CLOSED)
        b.ts = OPENS
        self.assertEqual(b.v.press(0)[0], voting.VOTED)
        b.ms += 4000
        b.ts = CLOSES - 1
        self.assertEqual(b.v.press(0)[0], voting.VOTED)
        b.ms += 4000
        b.ts = CLOSES
        self.assertEqual(b.v.press(0)[0], voting.CLOSED)
        self.assertEqual(len(b.votes), 2)

    def test_no_vote_while_the_clock_is_unset(self):
        b = self.booth()
        b.ts = None
        self.assertEqual(b.v.press(0)[0], voting.CLOSED)
        self.assertEqual(b.votes, [])

    def test_vote_during_cooldown_is_counted_as_touch_not_vote(self):
        b = self.booth()  # default cooldown 10 s after the 3 s confirmation
        self.assertEqual(b.v.press(0)[0], voting.VOTED)
        b.wait(2)
        self.assertEqual(b.v.press(1)[0], voting.COOLDOWN)
        b.wait(10)  # 12 s after the vote
        self.assertEqual(b.v.press(1)[0], voting.COOLDOWN)
        b.wait(1)  # 13 s
        self.assertEqual(b.v.press(1)[0], voting.VOTED)
        self.assertEqual([c for _, c in b.votes], ["yes", "no"])

    def test_cooldown_is_settable_and_read_at_each_press(self):
        b = self.booth(cooldown=60)
        b.v.press(0)
        b.wait(30)
        self.assertEqual(b.v.press(0)[0], voting.COOLDOWN)
        b.settings["cooldown"] = 0
        self.assertEqual(b.v.press(0)[0], voting.VOTED)

    def test_hourly_cap_shows_try_later_and_records_nothing(self):
        b = self.booth(cooldown=0)
        for _ in range(60):
            self.assertEqual(b.v.press(0)[0], voting.VOTED)
            b.wait(3)
        self.assertEqual(b.v.press(1), (voting.CAPPED, 1))
        self.assertEqual(len(b.votes), 60)
        b.wait(3600 - 180 + 1)  # the first vote leaves the hour
        self.assertEqual(b.v.press(1)[0], voting.VOTED)
        self.assertEqual(len(b.votes), 61)

    def test_cap_is_settable(self):
        b = self.booth(cooldown=0, vote_cap=2)
        b.v.press(0)
        b.wait(3)
        b.v.press(0)
        b.wait(3)
        self.assertEqual(b.v.press(0)[0], voting.CAPPED)
        self.assertEqual(b.v.votes_last_hour(), 2)

    def test_a_vote_needs_the_poll_that_is_stored_after_reboot(self):
        b = self.booth()
        b.boot()
        self.assertEqual(b.v.press(1)[0], voting.VOTED)
        self.assertEqual(b.votes, [("mostar-2026-park-lights", "no")])


if __name__ == "__main__":
    unittest.main()
