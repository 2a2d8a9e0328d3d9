"""No value a client can send makes a 500 (issue 18, item 2): every number is range-checked to
what SQLite and PostgreSQL both hold, text refuses NUL, control and bidi-override characters,
and a vote id is canonical. Each case on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.portal.conftest import bench_day

DAY = bench_day("maglaj-04", "2026-11-22")


def put_raw(portal: Any, path: str, raw: str, token: str) -> Any:
    return portal.http.put(
        path,
        content=raw.encode("utf-8", "surrogatepass"),
        headers={**portal.auth(token), "Content-Type": "application/json"},
    )


@pytest.mark.parametrize("field", ["touches", "sessions", "votes"])
def test_a_daily_count_beyond_32_bits_is_400_and_the_largest_is_stored(
    any_portal: Any, field: str
) -> None:
    portal = any_portal
    token = portal.auth(portal.token("maglaj"))
    r = portal.http.put("/api/v1/bench-days", json={"days": [{**DAY, field: 2**31}]}, headers=token)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"days[0].{field}:")
    r = portal.http.put(
        "/api/v1/bench-days", json={"days": [{**DAY, field: 2**31 - 1}]}, headers=token
    )
    assert r.status_code == 200, r.text
    assert r.json()["upserted"] == 1


def test_huge_numbers_are_400_not_500(any_portal: Any) -> None:
    portal = any_portal
    token = portal.token("maglaj")
    for field in ("solar_wh", "uptime_pct", "touches"):
        raw = json.dumps({"days": [{**DAY, field: 7}]}).replace(": 7", ": " + "9" * 400)
        r = put_raw(portal, "/api/v1/bench-days", raw, token)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith(f"days[0].{field}:")
    state = {"municipality": "maglaj", "online": True, "last_seen": 2**31}
    r = portal.http.put("/api/v1/benches/maglaj-04", json=state, headers=portal.auth(token))
    assert r.status_code == 400
    assert r.json()["error"].startswith("last_seen:")
    state["last_seen"] = 2**31 - 1
    r = portal.http.put("/api/v1/benches/maglaj-04", json=state, headers=portal.auth(token))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("field", ["poll", "choice"])
def test_a_votes_poll_or_choice_with_a_control_character_is_a_400(
    any_portal: Any, make_vote: Any, field: str
) -> None:
    """The API's schema says these are text (no control characters): the portal says so too,
    naming the field, instead of taking the vote as an item to reject."""
    portal = any_portal
    now = int(time.time())
    poll = portal.make_poll(["maglaj"], opens=now - 3600, closes=now + 3600)
    vote = {**make_vote(poll, "maglaj-04", 7, ts=now), field: "a\u0001b"}
    r = portal.http.post(
        "/api/v1/votes", json={"votes": [vote]}, headers=portal.auth(portal.token("maglaj"))
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"votes[0].{field}:") and "control" in r.json()["error"]


def test_poll_and_vote_times_up_to_2_to_the_53_are_kept(any_portal: Any, make_vote: Any) -> None:
    portal = any_portal
    now = int(time.time())
    poll = portal.make_poll(["maglaj"], opens=now - 3600, closes=2**53)  # a 500 on PostgreSQL once
    late = make_vote(poll, "maglaj-04", 1, ts=2**53 - 1)
    r = portal.http.post(
        "/api/v1/votes", json={"votes": [late]}, headers=portal.auth(portal.token("maglaj"))
    )
    assert r.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    too_late = make_vote(poll, "maglaj-04", 2, ts=2**53 + 1)
    r = portal.http.post(
        "/api/v1/votes", json={"votes": [too_late]}, headers=portal.auth(portal.token("maglaj"))
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith("votes[0].ts:")
    # The pages show a time past the calendar's years rather than fail on it.
    assert portal.http.get("/").status_code == 200
    assert portal.http.get(f"/api/v1/polls/{poll['id']}/results").status_code == 200


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("1.0\u0000", "control"),
        ("1.0\u0007", "control"),
        ("1.0\n", "control"),
        ("1.0\u202e", "bidirectional"),
        ("1.0\u2066", "bidirectional"),
        ("1.0\ud800", "surrogate"),
    ],
)
def test_text_fields_refuse_nul_control_and_bidi_characters(
    any_portal: Any, text: str, what: str
) -> None:
    portal = any_portal
    raw = json.dumps({"municipality": "maglaj", "online": True, "fw": text})
    r = put_raw(portal, "/api/v1/benches/maglaj-05", raw, portal.token("maglaj"))
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("fw:") and what in r.json()["error"]
    body = {
        "v": 1,
        "id": f"text-check-{abs(hash(text)) % 10**6}",
        "opens": 1795651000,
        "closes": 1798243000,
        "question": {"bs": "Pitanje" + text},
        "options": [{"id": "a", "label": {"bs": "A"}}, {"id": "b", "label": {"bs": "B"}}],
        "municipalities": ["maglaj"],
    }
    r = portal.http.post(
        "/api/v1/polls",
        content=json.dumps(body).encode(),
        headers={**portal.auth(portal.admin), "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("question.bs:")


@pytest.mark.parametrize(
    "vote_id",
    [
        "maglaj-06/017/1236",  # the same vote as maglaj-06/17/1236, written otherwise
        "maglaj-06/17/01236",
        "maglaj-06/1²/1236",  # a digit to str.isdigit(), not to int()
        "maglaj-06/١٧/1236",  # Arabic-Indic digits
        "maglaj-06/+17/1236",
        "maglaj-06/17/1236/",
        "maglaj-06/0/1236",
        f"maglaj-06/{2**53 + 1}/1",
        "maglaj-06/1000000000000000/1",  # 16 digits
    ],
)
def test_a_vote_id_must_be_canonical(any_portal: Any, make_vote: Any, vote_id: str) -> None:
    portal = any_portal
    poll = portal.make_poll(["maglaj"])
    vote = {**make_vote(poll, "maglaj-06", 1236, boot=17), "id": vote_id}
    r = portal.http.post(
        "/api/v1/votes", json={"votes": [vote]}, headers=portal.auth(portal.token("maglaj"))
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("votes[0].id:")
    assert portal.http.get(f"/api/v1/polls/{poll['id']}/results").json()["total"] == 0


def test_a_vote_written_with_leading_zeros_is_not_a_second_vote(
    any_portal: Any, make_vote: Any
) -> None:
    portal = any_portal
    poll = portal.make_poll(["maglaj"])
    token = portal.auth(portal.token("maglaj"))
    vote = make_vote(poll, "maglaj-07", 1236, boot=170)
    padded = {**vote, "id": "maglaj-07/0170/1236", "choice": "no"}
    assert portal.http.post("/api/v1/votes", json={"votes": [vote]}, headers=token).json() == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": [],
    }
    r = portal.http.post("/api/v1/votes", json={"votes": [padded]}, headers=token)
    assert r.status_code == 400
    assert portal.http.get(f"/api/v1/polls/{poll['id']}/results").json()["choices"] == {
        "yes": 1,
        "no": 0,
    }


@pytest.mark.parametrize("poll_id", ["a\u0000b", "x" * 300, "ŠĐŽ-poll", "..", "p%0A"])
def test_results_of_a_malformed_poll_id_are_404(any_portal: Any, poll_id: str) -> None:
    from urllib.parse import quote

    r = any_portal.http.get(f"/api/v1/polls/{quote(poll_id, safe='')}/results")
    assert r.status_code == 404, r.text
    assert "error" in r.json()


def test_a_date_with_non_ascii_digits_is_400(any_portal: Any) -> None:
    portal = any_portal
    r = portal.http.put(
        "/api/v1/bench-days",
        json={"days": [{**DAY, "date": "２０２６-11-22"}]},
        headers=portal.auth(portal.token("maglaj")),
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith("days[0].date:")
