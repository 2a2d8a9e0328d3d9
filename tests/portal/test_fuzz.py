"""The portal API against bodies a broken gateway or a stranger could send: whatever arrives, the
answer is a 4xx naming what is wrong (never a 500), and a refused request changes nothing.

Property-based (hypothesis) against the real server (`klupa portal serve`, SQLite).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit.fuzz import mutated, paths

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check_answer(r: Any, ok: set[int]) -> None:
    assert r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    if r.status_code in ok:
        return
    error = r.json()["error"]
    assert isinstance(error, str) and error
    if r.status_code == 400:
        field, sep, why = error.partition(": ")
        assert sep and field and why, error  # "field: what is wrong"


def good_vote(poll: dict[str, Any], seq: int) -> dict[str, Any]:
    return {
        "id": f"nevesinje-01/77/{seq}",
        "municipality": "nevesinje",
        "bench": "nevesinje-01",
        "poll": poll["id"],
        "choice": "yes",
        "ts": int(time.time()) - 60,
    }


@pytest.fixture(scope="module")
def fuzz_poll(portal: Any) -> dict[str, Any]:
    return dict(portal.make_poll(["nevesinje"]))


def totals(portal: Any, poll: dict[str, Any]) -> Any:
    r = portal.http.get(f"/api/v1/polls/{poll['id']}/results", headers=portal.auth(portal.admin))
    assert r.status_code == 200, r.text
    return r.json()["total"]


@FUZZ
@given(data=st.data())
def test_any_votes_body_is_answered_and_a_refused_batch_counts_nothing(
    portal: Any, fuzz_poll: dict[str, Any], data: st.DataObject
) -> None:
    seq = data.draw(st.integers(min_value=1, max_value=2**40))
    good = {"votes": [good_vote(fuzz_poll, seq), good_vote(fuzz_poll, seq + 1)]}
    body = data.draw(mutated(good))
    before = totals(portal, fuzz_poll)
    r = portal.http.post("/api/v1/votes", json=body, headers=portal.auth(portal.token("nevesinje")))
    check_answer(r, {200})
    if r.status_code != 200:
        assert totals(portal, fuzz_poll) == before
    else:
        out = r.json()
        assert totals(portal, fuzz_poll) == before + out["accepted"]
        for item in out["rejected"]:
            assert isinstance(item["reason"], str) and item["reason"]


GOOD_DAY = {
    "municipality": "nevesinje",
    "bench": "nevesinje-02",
    "date": "2026-11-26",
    "solar_wh": 310.5,
    "charge_wh": 42.0,
    "sessions": 9,
    "seat_occ_s": 5400,
    "touches": 31,
    "votes": 12,
    "uptime_pct": 99.5,
}


@FUZZ
@given(body=mutated({"days": [GOOD_DAY]}))
def test_any_bench_days_body_is_answered(portal: Any, body: Any) -> None:
    r = portal.http.put(
        "/api/v1/bench-days", json=body, headers=portal.auth(portal.token("nevesinje"))
    )
    check_answer(r, {200})


GOOD_STATUS = {
    "municipality": "nevesinje",
    "online": True,
    "last_seen": 1795700000,
    "soc": 81.5,
    "power": "normal",
    "fw": "1.0.0",
}


@FUZZ
@given(body=mutated(GOOD_STATUS))
def test_any_bench_status_body_is_answered(portal: Any, body: Any) -> None:
    r = portal.http.put(
        "/api/v1/benches/nevesinje-02", json=body, headers=portal.auth(portal.token("nevesinje"))
    )
    check_answer(r, {200})


GOOD_POLL = {
    "v": 1,
    "id": "fuzz-poll",
    "opens": 1795651000,
    "closes": 1798243000,
    "question": {"bs": "Da li želite više klupa?", "sr": "Да ли желите више клупа?"},
    "options": [{"id": "yes", "label": {"bs": "Da"}}, {"id": "no", "label": {"bs": "Ne"}}],
    "municipalities": ["nevesinje"],
}


@FUZZ
@given(body=mutated(GOOD_POLL), n=st.integers(min_value=0, max_value=2**40))
def test_any_poll_body_is_answered(portal: Any, body: Any, n: int) -> None:
    if isinstance(body, dict) and body.get("id") == "fuzz-poll":
        body["id"] = f"fuzz-poll-{n}"  # a fresh id, so a good body is a 201, not a 409
    r = portal.http.post("/api/v1/polls", json=body, headers=portal.auth(portal.admin))
    check_answer(r, {201})


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than Python's recursion limit
        b'{"votes": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"votes": [{"ts": NaN}]}',
        b'{"days": [{"solar_wh": Infinity}]}',
        b'{"votes": [], "votes": 3}',
        b"\xff\xfe{}",
        b"",
        b"null",
        b'"votes"',
    ],
)
def test_malformed_json_is_400_not_500(portal: Any, raw: bytes) -> None:
    for method, path in [("POST", "/api/v1/votes"), ("PUT", "/api/v1/bench-days")]:
        r = portal.http.request(
            method,
            path,
            content=raw,
            headers={**portal.auth(portal.token("nevesinje")), "Content-Type": "application/json"},
        )
        assert r.status_code == 400, r.text[:300]
        assert r.json()["error"].startswith(("body", "votes", "days")), r.text[:300]


def test_nan_and_infinity_are_refused_by_name(portal: Any) -> None:
    day = json.dumps({"days": [{**GOOD_DAY, "solar_wh": 1.5}]}).replace("1.5", "NaN")
    r = portal.http.put(
        "/api/v1/bench-days",
        content=day.encode(),
        headers={**portal.auth(portal.token("nevesinje")), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith(("body", "days[0].solar_wh")), r.text


segment = st.text(
    st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=30
) | st.sampled_from(["nevesinje-02", "..", "%00", "%ZZ", "a" * 300])


@FUZZ
@given(
    path=st.sampled_from(
        ["/", "/benches", "/benches/{}", "/api/v1/polls", "/api/v1/polls/{}/results"]
    ),
    part=segment,
    query=st.dictionaries(
        st.sampled_from(["lang", "municipality", "x"]), st.text(max_size=20), max_size=2
    ),
    cookie=st.text(st.characters(codec="ascii", min_codepoint=33, max_codepoint=126), max_size=20),
)
def test_any_page_or_read_is_answered(
    portal: Any, path: str, part: str, query: dict[str, str], cookie: str
) -> None:
    from urllib.parse import quote

    url = path.format(quote(part, safe=""))
    r = portal.http.get(url, params=query, headers={"Cookie": f"lang={cookie}"})
    assert r.status_code < 500, f"{url} {query}: {r.status_code} {r.text[:300]}"
    assert r.status_code in (200, 400, 404), f"{url} {query}: {r.status_code}"


@settings(max_examples=600, deadline=None)
@given(body=mutated(GOOD_POLL))
def test_every_poll_the_portal_takes_is_one_the_gateway_and_the_bench_show(body: Any) -> None:
    # In-process: the portal's check against the gateway's and the bench's. A poll the portal
    # stored but the gateway skipped would never reach a bench, with only a log line to say so.
    from edge_gateway import protocol as P
    from portal import checks
    from testkit.vm import firmware_module

    poll_error = firmware_module("bench.pollcheck").poll_error
    try:
        spec = checks.check_poll(body)
    except checks.BadField:
        return
    payload = P.encode(spec.wire())
    P.validate_poll(payload)  # raises ProtocolError if the gateway would skip it
    assert len(payload) <= 4096 and poll_error(json.loads(payload)) is None


# The same bodies against PostgreSQL, which refuses more than SQLite does (NUL in text, 32-bit
# integers, strict lengths): whatever arrives is still a 4xx naming the field, never a 500.
# Besides any JSON value, a field gets the values at the edges of what the databases hold.
FUZZ_PG = settings(FUZZ, max_examples=60)
EDGES = st.sampled_from(
    [
        2**31 - 1,
        2**31,
        2**53,
        2**53 + 1,
        2**63,
        10**400,
        -1,
        1e308,
        "\x00",
        "a\u202eb",
        "\ud800",
        "x" * 41,
        "x" * 81,
        "mostar-01/017/1",
        "nevesinje-01/1²/1",
    ]
)


@st.composite
def edged(draw: st.DrawFn, good: Any) -> Any:
    """`good` mutated anywhere, or one of its leaves set to an edge value."""
    if draw(st.booleans()):
        return draw(mutated(good))
    body = copy.deepcopy(good)
    where = draw(st.sampled_from([p for p in paths(body) if p]))
    parent = body
    for step in where[:-1]:
        parent = parent[step]
    parent[where[-1]] = draw(EDGES)
    return body


@FUZZ_PG
@given(data=st.data())
def test_any_votes_body_is_answered_on_postgresql(
    postgres_portal: Any, data: st.DataObject
) -> None:
    portal = postgres_portal
    if not hasattr(portal, "fuzz_poll"):
        portal.fuzz_poll = portal.make_poll(["nevesinje"])
    poll = portal.fuzz_poll
    seq = data.draw(st.integers(min_value=1, max_value=2**40))
    body = data.draw(edged({"votes": [good_vote(poll, seq), good_vote(poll, seq + 1)]}))
    r = send_json(portal, "POST", "/api/v1/votes", body)
    check_answer(r, {200})


@FUZZ_PG
@given(body=edged({"days": [GOOD_DAY]}))
def test_any_bench_days_body_is_answered_on_postgresql(postgres_portal: Any, body: Any) -> None:
    portal = postgres_portal
    r = send_json(portal, "PUT", "/api/v1/bench-days", body)
    check_answer(r, {200})


@FUZZ_PG
@given(body=edged(GOOD_STATUS))
def test_any_bench_status_body_is_answered_on_postgresql(postgres_portal: Any, body: Any) -> None:
    portal = postgres_portal
    r = send_json(portal, "PUT", "/api/v1/benches/nevesinje-02", body)
    check_answer(r, {200})


@FUZZ_PG
@given(body=edged({"version": "0.1.0", "ts": 1795712400, "lag_s": 1.5}))
def test_any_heartbeat_body_is_answered_on_postgresql(postgres_portal: Any, body: Any) -> None:
    portal = postgres_portal
    r = send_json(portal, "PUT", "/api/v1/gateways/nevesinje", body)
    check_answer(r, {200})


def send_json(portal: Any, method: str, path: str, body: Any) -> Any:
    """`body` as JSON with non-ASCII escaped, so a lone surrogate reaches the server as `\\ud800`."""
    return portal.http.request(
        method,
        path,
        content=json.dumps(body).encode(),
        headers={**portal.auth(portal.token("nevesinje")), "Content-Type": "application/json"},
    )
