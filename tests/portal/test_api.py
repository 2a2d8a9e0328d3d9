"""The portal HTTP API against the real server (`klupa portal serve`, SQLite)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from portal import store
from testkit.polls import poll_options, protocol_poll
from tests.portal.conftest import bench_day

POLL_KEYS = {"v", "id", "opens", "closes", "question", "options"}


def results(portal: Any, poll: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = portal.auth(token) if token else {}
    r = portal.http.get(f"/api/v1/polls/{poll['id']}/results", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def post_votes(portal: Any, municipality: str, votes: list[dict[str, Any]]) -> httpx.Response:
    return portal.http.post(
        "/api/v1/votes", json={"votes": votes}, headers=portal.auth(portal.token(municipality))
    )


def test_healthz_answers_with_the_schema_revision(portal: Any) -> None:
    r = portal.http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "schema": "0003"}


def test_polls_lists_open_and_upcoming_polls_as_protocol_polls(portal: Any) -> None:
    now = int(time.time())
    running = portal.make_poll(["jablanica"])
    soon = portal.make_poll(["jablanica", "maglaj"], opens=now + 6 * 86400, closes=now + 9 * 86400)
    portal.make_poll(["jablanica"], opens=now + 8 * 86400, closes=now + 9 * 86400)  # too far
    portal.make_poll(["jablanica"], opens=now - 7200, closes=now - 60)  # closed
    portal.make_poll(["maglaj"])  # elsewhere
    r = portal.http.get("/api/v1/polls", params={"municipality": "jablanica"})
    assert r.status_code == 200
    polls = r.json()["polls"]
    assert [p["id"] for p in polls] == [running["id"], soon["id"]]
    for poll in polls:
        # The Poll, plus how its results are shown (the gateway keeps hidden ones back).
        assert set(poll) == POLL_KEYS | {"results"} and poll["results"] == "live"
    assert polls[0]["question"]["sr"] == "Да ли желите више расвјете у парку?"
    assert polls[0]["options"] == running["options"]
    assert "Да ли" in r.content.decode("utf-8")  # written as UTF-8, not \u escapes


def test_polls_needs_a_valid_municipality(portal: Any) -> None:
    r = portal.http.get("/api/v1/polls")
    assert r.status_code == 400
    assert "municipality" in r.json()["error"]
    r = portal.http.get("/api/v1/polls", params={"municipality": "Mostar!"})
    assert r.status_code == 400
    assert "municipality" in r.json()["error"]


def test_missing_or_unknown_token_is_401(portal: Any) -> None:
    body = {"votes": []}
    assert portal.http.post("/api/v1/votes", json=body).status_code == 401
    bad = portal.auth("klp_not-a-token")
    r = portal.http.post("/api/v1/votes", json=body, headers=bad)
    assert r.status_code == 401
    assert "error" in r.json()
    assert portal.http.get("/api/v1/polls?municipality=mostar", headers=bad).status_code == 401
    r = portal.http.put("/api/v1/bench-days", json={"days": []})
    assert r.status_code == 401
    r = portal.http.put("/api/v1/benches/mostar-01", json={"municipality": "mostar"})
    assert r.status_code == 401
    r = portal.http.post("/api/v1/polls", json={}, headers={"Authorization": "Basic eDp5"})
    assert r.status_code == 401


def test_the_same_batch_twice_adds_nothing(portal: Any, make_vote: Any) -> None:
    poll = portal.make_poll(["mostar"])
    batch = [
        make_vote(poll, "mostar-01", seq, choice)
        for seq, choice in [(1, "yes"), (2, "no"), (3, "yes")]
    ]
    first = post_votes(portal, "mostar", batch)
    assert first.status_code == 200
    assert first.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    again = post_votes(portal, "mostar", batch)
    assert again.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    # A repeat inside one batch is a duplicate too, never a second vote.
    inside = post_votes(portal, "mostar", [make_vote(poll, "mostar-01", 4)] * 2)
    assert inside.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert results(portal, poll) == {
        "poll": poll["id"],
        "total": 4,
        "choices": {"yes": 3, "no": 1},
        "benches": {"mostar-01": {"yes": 3, "no": 1}},
    }


def test_a_batch_with_bad_votes_applies_the_rest_and_names_the_bad_ones(
    portal: Any, make_vote: Any
) -> None:
    poll = portal.make_poll(["nevesinje"])
    other = portal.make_poll(["ravno"])
    bench = "nevesinje-01"
    good = [make_vote(poll, bench, 1), make_vote(poll, bench, 2, "no")]
    unknown_poll = {**make_vote(poll, bench, 3), "poll": "no-such-poll"}
    early = make_vote(poll, bench, 4, ts=poll["opens"] - 1)
    at_close = make_vote(poll, bench, 5, ts=poll["closes"])
    bad_choice = make_vote(poll, bench, 6, "maybe")
    elsewhere = make_vote(other, bench, 7)  # a poll that does not run in nevesinje
    r = post_votes(
        portal,
        "nevesinje",
        [good[0], unknown_poll, early, at_close, bad_choice, elsewhere, good[1]],
    )
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 2
    assert body["duplicates"] == 0
    reasons = {item["id"]: item["reason"] for item in body["rejected"]}
    assert set(reasons) == {v["id"] for v in (unknown_poll, early, at_close, bad_choice, elsewhere)}
    assert "unknown poll" in reasons[unknown_poll["id"]]
    assert "outside" in reasons[early["id"]]
    assert "outside" in reasons[at_close["id"]]
    assert "unknown choice" in reasons[bad_choice["id"]]
    assert "does not run in nevesinje" in reasons[elsewhere["id"]]
    assert results(portal, poll)["choices"] == {"yes": 1, "no": 1}
    assert results(portal, other)["total"] == 0


def test_an_item_of_another_municipality_refuses_the_whole_batch(
    portal: Any, make_vote: Any
) -> None:
    poll = portal.make_poll(["mostar", "trebinje"])
    batch = [make_vote(poll, "mostar-01", 1), make_vote(poll, "trebinje-01", 1)]
    r = post_votes(portal, "mostar", batch)
    assert r.status_code == 403
    assert "trebinje" in r.json()["error"]
    assert results(portal, poll)["total"] == 0
    # The admin token manages polls; it writes no votes for anyone.
    r = portal.http.post("/api/v1/votes", json={"votes": batch}, headers=portal.auth(portal.admin))
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"votes": {}}', "votes"),
        (b'{"ballots": []}', "votes"),
        (b'{"votes": [42]}', "votes[0]"),
        (
            b'{"votes": [{"id": "mostar-01/1/1", "municipality": "mostar", "bench": "mostar-01",'
            b' "poll": "p-1", "choice": "yes"}]}',
            "votes[0].ts",
        ),
        (
            b'{"votes": [{"id": "mostar-01/1/1", "municipality": "mostar", "bench": "mostar-01",'
            b' "poll": "p-1", "choice": "yes", "ts": 1.5}]}',
            "votes[0].ts",
        ),
        (
            b'{"votes": [{"id": "mostar-01/1/1", "municipality": "mostar", "bench": "mostar-01",'
            b' "poll": "' + b"p" * 65 + b'", "choice": "yes", "ts": 1}]}',
            "votes[0].poll",
        ),
        (
            b'{"votes": [{"id": "mostar-01/x/1", "municipality": "mostar", "bench": "mostar-01",'
            b' "poll": "p-1", "choice": "yes", "ts": 1}]}',
            "votes[0].id",
        ),
        (
            b'{"votes": [{"id": "Mostar 01/1/1", "municipality": "mostar", "bench": "Mostar 01",'
            b' "poll": "p-1", "choice": "yes", "ts": 1}]}',
            "votes[0].bench",
        ),
    ],
)
def test_malformed_votes_are_400_naming_the_field(portal: Any, body: bytes, field: str) -> None:
    r = portal.http.post(
        "/api/v1/votes",
        content=body,
        headers={**portal.auth(portal.token("mostar")), "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(field + ":")


def test_an_id_of_another_bench_is_a_rejected_item(portal: Any, make_vote: Any) -> None:
    poll = portal.make_poll(["mostar"])
    odd = {**make_vote(poll, "mostar-01", 1), "id": "mostar-02/1/1"}
    r = post_votes(portal, "mostar", [odd, make_vote(poll, "mostar-01", 2)])
    assert r.status_code == 200
    assert r.json()["accepted"] == 1
    assert r.json()["rejected"][0]["id"] == "mostar-02/1/1"
    assert "not one of bench mostar-01's" in r.json()["rejected"][0]["reason"]


def test_a_ts_with_zero_fraction_counts_as_an_integer(portal: Any, make_vote: Any) -> None:
    poll = portal.make_poll(["zepce"])
    item = make_vote(poll, "zepce-01", 1)
    item["ts"] = float(item["ts"])
    assert post_votes(portal, "zepce", [item]).json()["accepted"] == 1


def test_a_body_over_one_mib_is_413(portal: Any) -> None:
    headers = {**portal.auth(portal.token("mostar")), "Content-Type": "application/json"}
    big = b'{"votes": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    r = portal.http.post("/api/v1/votes", content=big, headers=headers)
    assert r.status_code == 413
    assert "error" in r.json()

    def chunks() -> Any:  # no Content-Length: the server must count what arrives
        yield b'{"votes": [], "pad": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    r = portal.http.post("/api/v1/votes", content=chunks(), headers=headers)
    assert r.status_code == 413
    # Just under the limit is read and judged normally.
    ok = b'{"votes": [], "pad": "' + b"x" * (1024 * 1024 - 100) + b'"}'
    r = portal.http.post("/api/v1/votes", content=ok, headers=headers)
    assert r.status_code == 200
    assert r.json() == {"accepted": 0, "duplicates": 0, "rejected": []}


def test_two_gateways_posting_at_once_count_every_vote_once(portal: Any, make_vote: Any) -> None:
    poll = portal.make_poll(["kostajnica", "novi-grad"])
    batches = []
    for m in ("kostajnica", "novi-grad"):
        for b in range(4):
            batch = [
                make_vote(poll, f"{m}-01", b * 200 + i + 1, "yes" if i % 3 else "no")
                for i in range(200)
            ]
            batches += [(m, batch), (m, batch)]  # each batch sent twice, concurrently

    def send(item: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
        m, batch = item
        with httpx.Client(base_url=portal.url, timeout=60) as client:
            r = client.post(
                "/api/v1/votes", json={"votes": batch}, headers=portal.auth(portal.token(m))
            )
            assert r.status_code == 200, r.text
            return r.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(send, batches))
    assert sum(o["accepted"] for o in outcomes) == 1600
    assert sum(o["duplicates"] for o in outcomes) == 1600
    res = results(portal, poll)
    assert res["total"] == 1600
    assert res["benches"]["kostajnica-01"]["no"] == res["benches"]["novi-grad-01"]["no"] == 268


def test_bench_days_are_upserted(portal: Any) -> None:
    day = {
        "municipality": "maglaj",
        "bench": "maglaj-01",
        "date": "2026-11-20",
        "solar_wh": 101.5,
        "charge_wh": 33.25,
        "sessions": 4,
        "seat_occ_s": 7200,
        "touches": 19,
        "votes": 6,
        "uptime_pct": 97.5,
    }
    token = portal.auth(portal.token("maglaj"))
    r = portal.http.put("/api/v1/bench-days", json={"days": [day]}, headers=token)
    assert r.status_code == 200
    assert r.json() == {"upserted": 1, "rejected": []}
    later = {**day, "solar_wh": 140.0, "sessions": 9}
    other_day = {**day, "date": "2026-11-21"}
    r = portal.http.put("/api/v1/bench-days", json={"days": [later, other_day]}, headers=token)
    assert r.json() == {"upserted": 2, "rejected": []}
    now = int(time.mktime((2026, 11, 21, 12, 0, 0, 0, 0, -1)))
    _, series = store.bench_history(portal.engine, "maglaj-01", now, days=2)
    assert [d["solar_wh"] for d in series] == [140.0, 101.5]
    assert [d["sessions"] for d in series] == [9, 4]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"solar_wh": -1}, "days[0].solar_wh"),
        ({"date": "2026-13-01"}, "days[0].date"),
        ({"date": "26.11.2026"}, "days[0].date"),
        ({"uptime_pct": 101}, "days[0].uptime_pct"),
        ({"sessions": "4"}, "days[0].sessions"),
        ({"bench": None}, "days[0].bench"),
    ],
)
def test_bad_bench_days_are_400_naming_the_field(
    portal: Any, change: dict[str, Any], field: str
) -> None:
    day = bench_day("maglaj-01", "2026-11-20", **change)
    r = portal.http.put(
        "/api/v1/bench-days", json={"days": [day]}, headers=portal.auth(portal.token("maglaj"))
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith(field + ":")


def test_bench_days_of_another_municipality_are_403(portal: Any) -> None:
    day = bench_day("ravno-01", "2026-11-20", solar_wh=1, charge_wh=1, uptime_pct=50)
    r = portal.http.put(
        "/api/v1/bench-days", json={"days": [day]}, headers=portal.auth(portal.token("maglaj"))
    )
    assert r.status_code == 403


def test_bench_status_is_stored_and_checked(portal: Any) -> None:
    token = portal.auth(portal.token("trebinje"))
    now = int(time.time())
    status = {
        "municipality": "trebinje",
        "online": True,
        "last_seen": now - 5,
        "soc": 81.5,
        "power": "normal",
        "fw": "1.0.0",
    }
    r = portal.http.put("/api/v1/benches/trebinje-01", json=status, headers=token)
    assert r.status_code == 200
    assert r.json() == {"ok": True}
    r = portal.http.put(
        "/api/v1/benches/trebinje-01",
        json={**status, "online": False, "power": "critical", "soc": 9.0},
        headers=token,
    )
    assert r.json() == {"ok": True}
    row = next(b for b in store.bench_overview(portal.engine, now) if b.bench == "trebinje-01")
    assert (row.online, row.soc, row.power, row.fw) == (False, 9.0, "critical", "1.0.0")
    assert row.since == now - 5  # offline since its last report

    bad = portal.http.put(
        "/api/v1/benches/trebinje-01", json={**status, "power": "turbo"}, headers=token
    )
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("power:")
    bad = portal.http.put(
        "/api/v1/benches/trebinje-01", json={**status, "online": "yes"}, headers=token
    )
    assert bad.json()["error"].startswith("online:")
    bad = portal.http.put("/api/v1/benches/T_01", json=status, headers=token)
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("bench:")
    bad = portal.http.put("/api/v1/benches/trebinje-01%0A", json=status, headers=token)
    assert bad.status_code == 400  # a `$`-anchored check lets a final newline through
    assert bad.json()["error"].startswith("bench:")
    foreign = portal.http.put(
        "/api/v1/benches/ravno-01", json={**status, "municipality": "ravno"}, headers=token
    )
    assert foreign.status_code == 403


def test_results_hidden_until_close_are_shown_only_to_the_admin(
    portal: Any, make_vote: Any
) -> None:
    now = int(time.time())
    hidden = portal.make_poll(["prijedor"], results="after_close")
    assert post_votes(portal, "prijedor", [make_vote(hidden, "prijedor-01", 1)]).status_code == 200
    assert results(portal, hidden) == {
        "poll": hidden["id"],
        "hidden": True,
        "closes": hidden["closes"],
    }
    assert results(portal, hidden, portal.token("prijedor"))["hidden"] is True
    assert results(portal, hidden, portal.admin)["total"] == 1
    # Once it has closed, everyone sees the results.
    closed = portal.make_poll(
        ["prijedor"], opens=now - 7200, closes=now - 10, results="after_close"
    )
    post_votes(portal, "prijedor", [make_vote(closed, "prijedor-01", 2, ts=now - 3600)])
    assert results(portal, closed)["choices"] == {"yes": 1, "no": 0}


def test_results_of_an_unknown_poll_are_404(portal: Any) -> None:
    r = portal.http.get("/api/v1/polls/no-such-poll/results")
    assert r.status_code == 404
    assert "error" in r.json()
    assert portal.http.get("/api/v1/nothing-here").json() == {"error": "Not Found"}


def test_creating_a_poll_needs_the_admin_token(portal: Any) -> None:
    body = protocol_poll(
        "needs-admin-poll",
        1,
        2,
        question={"bs": "Pitanje?"},
        **options(("a", {"bs": "A"}), ("b", {"bs": "B"})),
        municipalities=["mostar"],
    )
    assert portal.http.post("/api/v1/polls", json=body).status_code == 401
    r = portal.http.post("/api/v1/polls", json=body, headers=portal.auth(portal.token("mostar")))
    assert r.status_code == 403
    r = portal.http.post("/api/v1/polls", json=body, headers=portal.auth(portal.admin))
    assert r.status_code == 201
    assert r.json()["municipalities"] == ["mostar"]
    again = portal.http.post("/api/v1/polls", json=body, headers=portal.auth(portal.admin))
    assert again.status_code == 409
    assert "already exists" in again.json()["error"]


GOOD_POLL = protocol_poll("checked-poll", 1795651000, 1798243000, municipalities=["mostar"])


def options(*pairs: tuple[str, dict[str, str]]) -> dict[str, Any]:
    """A change to GOOD_POLL: these options, each an (id, label) pair."""
    return {"options": poll_options(*pairs)}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "X"}, "id"),
        ({"id": "ab"}, "id"),
        ({"v": 2}, "v"),
        ({"closes": 1795651000}, "closes"),
        ({"opens": "tomorrow"}, "opens"),
        ({"opens": True}, "opens"),
        ({"opens": 1795651000.1234}, "opens"),
        ({"closes": -1.5}, "closes"),
        ({"closes": 1e300}, "closes"),
        ({"closes": 10**30}, "closes"),
        ({"opens": 1795651000.2, "closes": 1795651000.7}, "closes"),  # no whole second in it
        ({"question": {"en": "Only English?"}}, "question.bs"),
        ({"question": {"bs": "x" * 201}}, "question.bs"),
        ({"question": {"bs": "Pitanje?", "de": "Frage?"}}, "question.de"),
        (options(("yes", {"bs": "Da"})), "options"),
        (options(*((f"o{i}", {"bs": "L"}) for i in range(5))), "options"),
        (options(("yes", {"bs": "D" * 25}), ("no", {"bs": "Ne"})), "options[0].label.bs"),
        (options(("yes", {"bs": "Da"}), ("yes", {"bs": "Ne"})), "options[1].id"),
        (options(("Yes!", {"bs": "Da"}), ("no", {"bs": "Ne"})), "options[0].id"),
        (options(("yes", {"en": "Yes"}), ("no", {"bs": "Ne"})), "options[0].label.bs"),
        ({"municipalities": []}, "municipalities"),
        ({"municipalities": ["Mostar"]}, "municipalities[0]"),
        ({"results": "sometimes"}, "results"),
    ],
)
def test_invalid_polls_are_400_naming_the_field(
    portal: Any, change: dict[str, Any], field: str
) -> None:
    r = portal.http.post(
        "/api/v1/polls", json={**GOOD_POLL, **change}, headers=portal.auth(portal.admin)
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(field + ":")


def test_fractional_poll_times_are_taken_as_the_next_whole_second(portal: Any) -> None:
    # opens/closes are floats by docs/protocol.md's number rule; vote times are whole seconds, so
    # [1000.5, 2000.25) admits exactly the votes of [1001, 2001).
    body = {**GOOD_POLL, "id": "fractional-times", "opens": 1795651000.5, "closes": 1798243000.25}
    r = portal.http.post("/api/v1/polls", json=body, headers=portal.auth(portal.admin))
    assert r.status_code == 201, r.text
    assert (r.json()["opens"], r.json()["closes"]) == (1795651001, 1798243001)


def test_poll_texts_keep_their_letters(portal: Any) -> None:
    body = {
        **GOOD_POLL,
        "id": "letters-poll",
        "question": {
            "bs": "Šta želite: čišće ulice ili đački park?",
            "sr": "Шта желите: чистије улице или ђачки парк?",
        },
        **options(
            ("a", {"bs": "Čišće ulice", "sr": "Чистије улице"}),
            ("b", {"bs": "Đački park", "sr": "Ђачки парк"}),
        ),
    }
    r = portal.http.post(
        "/api/v1/polls",
        content=json.dumps(body, ensure_ascii=False).encode(),
        headers={**portal.auth(portal.admin), "Content-Type": "application/json"},
    )
    assert r.status_code == 201
    stored = store.get_poll(portal.engine, "letters-poll")
    assert stored.question == body["question"]
    assert stored.options == body["options"]
