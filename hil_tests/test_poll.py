"""A poll made in the portal reaches the benches (the gateway's poll sync publishes it retained
on klupa/v1/{m}/poll), and the votes passers-by press on the benches reach the portal's
results: exactly the votes the benches sent, each once."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

NEEDS_PHYSICS = (
    "people pressing the pads for votes (the sim's passers-by); the poll's delivery runs "
    "serial-only: test_serial_poll.py"
)
BENCHES = ["mostar-01", "mostar-02"]
SPEED = 60.0
SPAN = 3600.0


def test_poll_reaches_benches_and_votes_reach_portal(system: Any, hil: dict[str, Any]) -> None:
    portal = system.with_portal()
    now = int(time.time())
    poll_id = f"mostar-hil-{now}"
    portal.post("/api/v1/polls", hil["yes_no_poll"](poll_id, now, "mostar"))
    system.start_gateway()
    ago = hil["window"]("mostar", SPAN, want_day=True)
    for bench in BENCHES:
        # Voting as the benches are set for a busy promenade: a short cooldown, a high cap,
        # which the portal is told too (it holds each bench to its hourly cap, 60 by default).
        system.bench_config(bench, cooldown=6, vote_cap=200)
        portal.bench_add(bench, "--vote-cap", "200")
    system.sim(BENCHES, SPEED, ago, SPAN, "--people", "30")
    hil["wait_until"](
        lambda: all(
            (system.flash / b / "poll.json").exists()
            and json.loads((system.flash / b / "poll.json").read_text()).get("id") == poll_id
            for b in BENCHES
        ),
        40,
        "the portal's poll on every bench",
    )
    for proc in system.sims:
        assert proc.wait(SPAN / SPEED + 60) == 0, system.sim_log()[-2000:]

    votes = system.records("vote")
    assert votes, "no vote reached the gateway"
    assert {v.body["poll"] for v in votes} == {poll_id}
    assert {v.body["choice"] for v in votes} <= {"yes", "no"}
    # Cooldown: two votes of one bench are at least the cooldown apart.
    for bench in BENCHES:
        ts = sorted(v.ts for v in votes if v.bench == bench)
        assert all(b - a >= 6 for a, b in zip(ts, ts[1:], strict=False)), ts
    # The votes are the presses the simulator made, minus those the bench's rules turn away
    # (brushes, cooldown, cap), which the simulator tracks on its own; a press too close to a
    # rule's edge to call is `unsure` and may go either way.
    judged: Counter[str] = Counter()
    for bench in BENCHES:
        log = system.flash / f"{bench}.presses.jsonl"
        presses = [json.loads(line) for line in log.read_text().splitlines()]
        judged.update(p["expect"] for p in presses)
        got = Counter(v.body["choice"] for v in votes if v.bench == bench)
        sure = Counter(p["option"] for p in presses if p["expect"] == "vote")
        maybe = Counter(p.get("option") for p in presses if p["expect"] == "unsure")
        for choice in ("yes", "no"):
            assert sure[choice] <= got[choice] <= sure[choice] + maybe[choice] + maybe[None], (
                bench,
                choice,
                got,
                sure,
                maybe,
            )
    assert judged["vote"] > 0 and judged["cooldown"] > 0 and judged["touch"] > 0, judged
    assert judged["unsure"] <= judged["vote"] // 2, judged  # edge cases stay the exception
    sent = Counter(v.body["choice"] for v in votes)
    per_bench = Counter((v.bench, v.body["choice"]) for v in votes)

    def portal_caught_up() -> bool:
        return portal.get(f"/api/v1/polls/{poll_id}/results")["total"] == len(votes)

    hil["wait_until"](portal_caught_up, 40, "the portal's results to count every vote")
    results = portal.get(f"/api/v1/polls/{poll_id}/results")
    assert results["choices"] == {"yes": sent["yes"], "no": sent["no"]}
    for bench, counts in results["benches"].items():
        assert counts == {c: per_bench[(bench, c)] for c in ("yes", "no")}
