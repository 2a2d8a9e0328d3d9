"""The simulator's own account of what the bench makes of each press
(klupa.sim.passersby.Tally): the expectation the HIL poll scenario holds the bench's votes to."""

from __future__ import annotations

import json
from pathlib import Path

from klupa.sim.passersby import Tally

OPENS = 1_000_000


def tally(tmp_path: Path, cooldown: int = 10, cap: int = 60, **state: object) -> Tally:
    poll = {
        "v": 1,
        "id": "p1",
        "opens": OPENS,
        "closes": OPENS + 86400,
        "question": {"bs": "?"},
        "options": [{"id": "da", "label": {"bs": "Da"}}, {"id": "ne", "label": {"bs": "Ne"}}],
    }
    (tmp_path / "poll.json").write_text(json.dumps(poll))
    (tmp_path / "config.json").write_text(json.dumps({"cooldown": cooldown, "vote_cap": cap}))
    if state:
        (tmp_path / "state.json").write_text(json.dumps(state))
    return Tally(tmp_path)


def test_clean_presses_brushes_and_pads_without_an_option(tmp_path: Path) -> None:
    t = tally(tmp_path)
    assert t.judge(OPENS + 100, 0, 0.6, True) == ("vote", "da")
    assert t.judge(OPENS + 200, 1, 0.05, True) == ("touch", "ne")  # too short
    assert t.judge(OPENS + 300, 1, 2.5, True) == ("touch", "ne")  # too long: not a vote
    assert t.judge(OPENS + 400, 3, 0.6, True) == ("no_option", None)
    assert t.judge(OPENS + 500, 1, 1.4, True) == ("unsure", "ne")  # at the 1.5 s edge


def test_closed_poll_and_a_bench_without_its_clock(tmp_path: Path) -> None:
    t = tally(tmp_path)
    assert t.judge(OPENS - 100, 0, 0.6, True) == ("closed", "da")
    assert t.judge(OPENS + 100, 0, 0.6, False) == ("closed", None)
    (tmp_path / "poll.json").unlink()  # the bench has no poll
    assert t.judge(OPENS + 200, 0, 0.6, True) == ("closed", None)


def test_cooldown_counts_from_the_vote_after_the_confirmation(tmp_path: Path) -> None:
    t = tally(tmp_path, cooldown=6)
    assert t.judge(OPENS + 100, 0, 0.6, True)[0] == "vote"
    assert t.judge(OPENS + 102, 0, 0.6, True)[0] == "cooldown"
    assert t.judge(OPENS + 108, 1, 0.6, True)[0] == "cooldown"  # 3 s + 6 s not yet over
    assert t.judge(OPENS + 110, 1, 0.6, True) == ("vote", "ne")


def test_an_edge_case_is_unsure_and_both_histories_are_followed(tmp_path: Path) -> None:
    t = tally(tmp_path, cooldown=6)
    assert t.judge(OPENS + 100, 0, 0.6, True)[0] == "vote"
    assert t.judge(OPENS + 109.1, 0, 0.6, True)[0] == "unsure"  # 9.1 s after: too close to call
    # 2 s later: a vote if the last one was at 100, the cooldown if it was at 109.1.
    assert t.judge(OPENS + 111.1, 0, 0.6, True)[0] == "unsure"
    # Past every history's cooldown: sure again.
    assert t.judge(OPENS + 125, 1, 0.6, True) == ("vote", "ne")


def test_hourly_cap_from_settings_set_on_the_bench(tmp_path: Path) -> None:
    t = tally(tmp_path, cooldown=0, cap=60, settings={"vote_cap": 2})
    assert [t.judge(OPENS + 100 + 10 * i, 0, 0.6, True)[0] for i in range(3)] == [
        "vote",
        "vote",
        "cap",
    ]
    assert t.judge(OPENS + 100 + 3700, 0, 0.6, True)[0] == "vote"  # an hour later
