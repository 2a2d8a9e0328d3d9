"""The same portal on PostgreSQL (a database URL instead of a SQLite file)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from portal import db, store


def test_postgres_portal_migrates_ingests_once_and_reports(
    postgres_portal: Any, make_vote: Any
) -> None:
    portal = postgres_portal
    assert portal.http.get("/healthz").json() == {"ok": True, "schema": "0003"}
    assert db.current_revision(portal.engine) == "0003"
    poll = portal.make_poll(["trebinje", "ravno"])
    batch = [make_vote(poll, "trebinje-01", n, ("yes", "no")[n % 2]) for n in range(1, 301)]
    bad = make_vote(poll, "trebinje-01", 999, "maybe")

    def send(municipality: str, votes: list[dict[str, Any]]) -> dict[str, Any]:
        with httpx.Client(base_url=portal.url, timeout=60) as client:
            r = client.post(
                "/api/v1/votes",
                json={"votes": votes},
                headers=portal.auth(portal.token(municipality)),
            )
            assert r.status_code == 200, r.text
            return r.json()

    ravno = [make_vote(poll, "ravno-01", n) for n in range(1, 101)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(
            pool.map(
                lambda a: send(*a),
                [
                    ("trebinje", batch + [bad]),
                    ("trebinje", batch),
                    ("ravno", ravno),
                    ("ravno", ravno),
                ],
            )
        )
    assert sum(o["accepted"] for o in outcomes) == 400
    assert sum(o["duplicates"] for o in outcomes) == 400
    assert outcomes[0]["rejected"] == [
        {"id": bad["id"], "reason": outcomes[0]["rejected"][0]["reason"]}
    ]
    assert "unknown choice" in outcomes[0]["rejected"][0]["reason"]
    r = portal.http.get(f"/api/v1/polls/{poll['id']}/results").json()
    assert r["total"] == 400
    assert r["benches"] == {
        "ravno-01": {"yes": 100, "no": 0},
        "trebinje-01": {"yes": 150, "no": 150},
    }
    forbidden = portal.http.post(
        "/api/v1/votes", json={"votes": ravno}, headers=portal.auth(portal.token("trebinje"))
    )
    assert forbidden.status_code == 403

    token = portal.auth(portal.token("trebinje"))
    day = {
        "municipality": "trebinje",
        "bench": "trebinje-01",
        "date": "2026-11-25",
        "solar_wh": 90.5,
        "charge_wh": 30.0,
        "sessions": 4,
        "seat_occ_s": 3600,
        "touches": 9,
        "votes": 2,
        "uptime_pct": 100.0,
    }
    for solar in (90.5, 120.25):
        r = portal.http.put(
            "/api/v1/bench-days", json={"days": [{**day, "solar_wh": solar}]}, headers=token
        )
        assert r.json() == {"upserted": 1, "rejected": []}
    now = int(time.time())
    status = {
        "municipality": "trebinje",
        "online": True,
        "last_seen": now,
        "soc": 70.0,
        "power": "normal",
        "fw": "1.0.0",
    }
    assert portal.http.put("/api/v1/benches/trebinje-01", json=status, headers=token).is_success
    _, series = store.bench_history(
        portal.engine, "trebinje-01", int(time.mktime((2026, 11, 25, 12, 0, 0, 0, 0, -1))), days=1
    )
    assert series[0]["solar_wh"] == 120.25
    for path in ("/", "/benches", "/benches/trebinje-01"):
        assert portal.http.get(path).status_code == 200
    assert "Да ли желите" in portal.http.get("/").text
