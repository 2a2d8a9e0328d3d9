"""Plausibility (issue 18, item 5): a bench adds at most its `vote_cap` votes per hour to a poll;
the excess is refused with a reason and counted on the poll's page. SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from typing import Any

from portal import registry


def post(portal: Any, municipality: str, votes: list[dict[str, Any]]) -> dict[str, Any]:
    r = portal.http.post(
        "/api/v1/votes", json={"votes": votes}, headers=portal.auth(portal.token(municipality))
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def poll_card(portal: Any, municipality: str, poll_id: str) -> str:
    portal.http.cookies.clear()
    html = portal.http.get("/", params={"lang": "en"}).text
    portal.http.cookies.clear()
    match = re.search(
        rf'<article class="card poll" id="{municipality}--{poll_id}">(.*?)</article>', html, re.S
    )
    assert match, html[-3000:]
    return match.group(1)


def test_a_bench_cannot_add_more_votes_per_hour_than_its_cap(
    any_portal: Any, make_vote: Any
) -> None:
    portal = any_portal
    now = int(time.time())
    poll = portal.make_poll(["jablanica"], opens=now - 4 * 3600)
    hour = (now - 2 * 3600) // 3600 * 3600  # a whole past hour inside the poll
    votes = [make_vote(poll, "jablanica-06", n, ts=hour + 50 * n) for n in range(1, 71)]
    first = post(portal, "jablanica", votes[::-1])  # the earliest 60 count, whatever the order
    assert (first["accepted"], first["duplicates"]) == (60, 0)
    assert [v["id"] for v in first["rejected"]] == [v["id"] for v in votes[60:]]
    for item in first["rejected"]:
        assert item["reason"].startswith("over_vote_cap: jablanica-06 already added its 60 votes")
    # Sent again: the counted ones are duplicates, the excess is refused again and not counted
    # twice on the page.
    again = post(portal, "jablanica", votes)
    assert (again["accepted"], again["duplicates"], len(again["rejected"])) == (60 - 60, 60, 10)
    # The next hour, and another bench, have their own caps.
    later = make_vote(poll, "jablanica-06", 71, ts=hour + 3600)
    other = make_vote(poll, "jablanica-02", 1, ts=hour + 1)
    assert post(portal, "jablanica", [later, other])["accepted"] == 2
    r = portal.http.get(f"/api/v1/polls/{poll['id']}/results").json()
    assert r["benches"]["jablanica-06"] == {"yes": 61, "no": 0}
    card = poll_card(portal, "jablanica", poll["id"])
    assert "Refused over the bench&#39;s hourly cap: 10" in card
    assert "jablanica-06: 10" in card


def test_the_registrys_vote_cap_is_the_benchs_own(any_portal: Any, make_vote: Any) -> None:
    portal = any_portal
    registry.add_bench(portal.engine, "jablanica-07", "jablanica", vote_cap=5)
    poll = portal.make_poll(["jablanica"])
    ts = int(time.time()) - 30
    out = post(
        portal, "jablanica", [make_vote(poll, "jablanica-07", n, ts=ts) for n in range(1, 8)]
    )
    assert out["accepted"] == 5
    assert [r["reason"][:40] for r in out["rejected"]] == [
        "over_vote_cap: jablanica-07 already adde"
    ] * 2
    assert "5 votes per hour" in out["rejected"][0]["reason"]


def test_each_poll_has_its_own_hourly_cap(any_portal: Any, make_vote: Any) -> None:
    portal = any_portal
    registry.add_bench(portal.engine, "jablanica-08", "jablanica", vote_cap=3)
    a, b = portal.make_poll(["jablanica"]), portal.make_poll(["jablanica"])
    ts = int(time.time()) - 30
    batch = [make_vote(p, "jablanica-08", n, ts=ts) for p in (a, b) for n in range(1, 5)]
    out = post(portal, "jablanica", batch)
    assert out["accepted"] == 6 and len(out["rejected"]) == 2


def test_a_vote_over_the_cap_late_in_time_is_refused_by_name_not_a_500(
    any_portal: Any, make_vote: Any
) -> None:
    """A poll may close as late as 2^53 s, so a vote's hour may lie past the calendar's last
    year: its refusal still names the hour (in Unix seconds) and the rest of the batch applies."""
    portal = any_portal
    registry.add_bench(portal.engine, "jablanica-10", "jablanica", vote_cap=1)
    poll = portal.make_poll(["jablanica"], closes=2**53)
    late = 2**53 - 10  # year 285 million
    batch = [make_vote(poll, "jablanica-10", n, ts=late) for n in (1, 2)]
    out = post(portal, "jablanica", batch)
    assert out["accepted"] == 1
    [refused] = out["rejected"]
    assert refused["id"] == batch[1]["id"]
    assert refused["reason"].startswith("over_vote_cap: jablanica-10 already added its 1 votes")
    assert f"in the hour from {late // 3600 * 3600} (Unix s)" in refused["reason"]
    r = portal.http.get(f"/api/v1/polls/{poll['id']}/results").json()
    assert r["benches"] == {"jablanica-10": {"yes": 1, "no": 0}}


def test_a_moved_bench_has_one_hourly_cap_not_one_per_municipality(
    any_portal: Any, make_vote: Any
) -> None:
    """The cap is the bench's: after `bench add --move`, the votes its former municipality
    counted in an hour still count against it."""
    portal = any_portal
    poll = portal.make_poll(["kostajnica", "prijedor"])
    registry.add_bench(portal.engine, "kostajnica-12", "kostajnica", vote_cap=2)
    ts = int(time.time()) - 30
    first = [make_vote(poll, "kostajnica-12", n, ts=ts, boot=4) for n in (1, 2)]
    assert post(portal, "kostajnica", first)["accepted"] == 2
    registry.add_bench(portal.engine, "kostajnica-12", "prijedor", move=True)
    third = make_vote(poll, "kostajnica-12", 3, ts=ts, boot=4, municipality="prijedor")
    out = post(portal, "prijedor", [third])
    assert out["accepted"] == 0
    assert [r["reason"][:44] for r in out["rejected"]] == [
        "over_vote_cap: kostajnica-12 already added i"
    ]
