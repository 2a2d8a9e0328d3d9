"""Open results (issue 18): the exports round-trip to the published results and digests, hidden
results stay hidden, and the poll list tells the gateways which results are hidden."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections import Counter
from typing import Any

from portal import export

CHOICES = ("yes", "no", "yes", "yes", "no", "no", "yes")


def rows_of(body: str) -> list[dict[str, str]]:
    """Read an export the way a stranger would: skip the `#` lines, parse the CSV."""
    return list(
        csv.DictReader(
            io.StringIO(
                "".join(line for line in body.splitlines(keepends=True) if not line.startswith("#"))
            )
        )
    )


def closed_poll_with_votes(portal: Any, make_vote: Any) -> dict[str, Any]:
    now = int(time.time())
    poll = portal.make_poll(["mostar"], opens=now - 7200, closes=now + 3)
    votes = [
        make_vote(poll, bench, n, CHOICES[(n + i) % len(CHOICES)], ts=now - 3000 + 7 * n)
        for i, bench in enumerate(("mostar-03", "mostar-04", "mostar-06"))
        for n in range(1, 4 + 3 * i)
    ]
    token = portal.auth(portal.token("mostar"))
    r = portal.http.post("/api/v1/votes", json={"votes": votes}, headers=token)
    assert r.json()["accepted"] == len(votes), r.text
    time.sleep(max(0, poll["closes"] - time.time()) + 0.2)
    poll["sent"] = votes
    return poll


def test_exports_round_trip_to_results_and_digests(any_portal: Any, make_vote: Any) -> None:
    portal = any_portal
    poll = closed_poll_with_votes(portal, make_vote)
    results = portal.http.get(f"/api/v1/polls/{poll['id']}/results").json()
    assert results["total"] == len(poll["sent"])

    r = portal.http.get("/api/v1/export/votes.csv", params={"poll": poll["id"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    head = [line for line in r.text.splitlines() if line.startswith("#")]
    assert any("CC BY 4.0" in line for line in head)
    assert {line.split(":")[0][2:] for line in head[2:]} == {
        "id",
        "municipality",
        "bench",
        "minute",
        "choice",
    }
    rows = rows_of(r.text)
    # Recount from the export: the same totals as /results, per choice and per bench.
    assert dict(Counter(row["choice"] for row in rows)) == {
        k: v for k, v in results["choices"].items() if v
    }
    per_bench: dict[str, Counter[str]] = {}
    for row in rows:
        per_bench.setdefault(row["bench"], Counter())[row["choice"]] += 1
        assert row["minute"].endswith("Z") and len(row["minute"]) == 17
    assert {b: dict(c) for b, c in per_bench.items()} == {
        b: {k: v for k, v in counts.items() if v} for b, counts in results["benches"].items()
    }
    # The digests, recomputed from the export by the published rule (not portal.export's).
    for bench in per_bench:
        lines = sorted(f"{row['id']},{row['choice']}\n" for row in rows if row["bench"] == bench)
        mine = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
        assert results["digests"][bench] == mine
    # The same digests on the poll's method page and its card on the front page.
    portal.http.cookies.clear()
    method = portal.http.get(f"/polls/{poll['id']}/method").text
    front = portal.http.get("/").text
    for bench, digest in results["digests"].items():
        assert f'<tr id="digest-{bench}"><td>{bench}</td><td class="digest">{digest}</td>' in method
        assert digest in front
    assert "mostar-01: 1.000" in method  # its own hourly cap, in Bosnian numbers
    # A changed vote changes its bench's digest.
    forged = [(row["id"], row["choice"]) for row in rows if row["bench"] == "mostar-04"]
    forged[0] = (forged[0][0], "no" if forged[0][1] == "yes" else "yes")
    assert export.digest_of(forged) != results["digests"]["mostar-04"]

    # A vote cast in time that arrives after the close counts, and changes its bench's digest
    # (the page and results must not keep an old one).
    late = make_vote(poll, "mostar-03", 99, "no", ts=poll["closes"] - 5)
    token = portal.auth(portal.token("mostar"))
    assert (
        portal.http.post("/api/v1/votes", json={"votes": [late]}, headers=token).json()["accepted"]
        == 1
    )
    again = portal.http.get(f"/api/v1/polls/{poll['id']}/results").json()
    assert again["digests"]["mostar-03"] != results["digests"]["mostar-03"]
    assert again["digests"]["mostar-04"] == results["digests"]["mostar-04"]
    lines = sorted(
        [f"{row['id']},{row['choice']}\n" for row in rows if row["bench"] == "mostar-03"]
        + [f"{late['id']},no\n"]
    )
    assert again["digests"]["mostar-03"] == hashlib.sha256("".join(lines).encode()).hexdigest()
    portal.http.cookies.clear()
    assert again["digests"]["mostar-03"] in portal.http.get("/").text
    poll["sent"].append(late)
    rows = rows_of(portal.http.get("/api/v1/export/votes.csv", params={"poll": poll["id"]}).text)

    # The minute is the vote's own, cut to the minute.
    sent = {v["id"]: v["ts"] for v in poll["sent"]}
    assert all(row["minute"] == export.minute_of(sent[row["id"]]) for row in rows)

    js = portal.http.get("/api/v1/export/votes.json", params={"poll": poll["id"]}).json()
    assert "CC BY 4.0" in js["licence"] and set(js["columns"]) == set(rows[0])
    assert sorted(js["votes"], key=lambda v: v["id"]) == sorted(rows, key=lambda v: v["id"])

    results = again  # with the late vote
    table = rows_of(portal.http.get("/api/v1/export/results.csv", params={"poll": poll["id"]}).text)
    totals = {row["choice"]: int(row["votes"]) for row in table if not row["bench"]}
    assert totals == results["choices"]
    for row in table:
        if row["bench"]:
            assert int(row["votes"]) == results["benches"][row["bench"]][row["choice"]]
            assert row["digest"] == results["digests"][row["bench"]]


def test_open_poll_has_no_digest_and_hidden_poll_exports_nothing(
    any_portal: Any, make_vote: Any
) -> None:
    portal = any_portal
    live = portal.make_poll(["mostar"])
    hidden = portal.make_poll(["mostar"], results="after_close")
    token = portal.auth(portal.token("mostar"))
    sent = [make_vote(live, "mostar-07", 1), make_vote(hidden, "mostar-07", 1)]
    assert portal.http.post("/api/v1/votes", json={"votes": sent}, headers=token).is_success
    assert "digests" not in portal.http.get(f"/api/v1/polls/{live['id']}/results").json()
    assert (
        rows_of(portal.http.get("/api/v1/export/results.csv", params={"poll": live["id"]}).text)[
            -1
        ]["digest"]
        == ""
    )
    for path in ("votes.csv", "votes.json", "results.csv"):
        r = portal.http.get(f"/api/v1/export/{path}", params={"poll": hidden["id"]})
        assert r.status_code == 403 and "closes" in r.json()["error"], r.text
        r = portal.http.get(f"/api/v1/export/{path}", params={"poll": "no-such-poll"})
        assert r.status_code == 404
        assert portal.http.get(f"/api/v1/export/{path}").status_code == 400
    admin = portal.auth(portal.admin)
    r = portal.http.get("/api/v1/export/votes.csv", params={"poll": hidden["id"]}, headers=admin)
    assert [row["id"] for row in rows_of(r.text)] == [sent[1]["id"]]

    listed = portal.http.get("/api/v1/polls", params={"municipality": "mostar"}).json()["polls"]
    modes = {p["id"]: p["results"] for p in listed}
    assert modes[live["id"]] == "live" and modes[hidden["id"]] == "after_close"


def test_bench_days_export_is_daily_sums_with_licence(any_portal: Any) -> None:
    portal = any_portal
    token = portal.auth(portal.token("trebinje"))
    days = [
        {
            "municipality": "trebinje",
            "bench": f"trebinje-0{b}",
            "date": f"2026-11-{d:02d}",
            "solar_wh": 10.5 * d,
            "charge_wh": 2.25 * b,
            "sessions": d + b,
            "seat_occ_s": 60 * d,
            "touches": 3 * d,
            "votes": b,
            "uptime_pct": 99.5,
        }
        for b in (2, 3)
        for d in (1, 2, 3, 4)
    ]
    r = portal.http.put("/api/v1/bench-days", json={"days": days}, headers=token)
    assert r.json()["upserted"] == len(days)
    q = {"municipality": "trebinje", "from": "2026-11-02", "to": "2026-11-03"}
    r = portal.http.get("/api/v1/export/bench-days.csv", params=q)
    assert r.status_code == 200 and "CC BY 4.0" in r.text
    rows = rows_of(r.text)
    want = [d for d in days if d["date"] in ("2026-11-02", "2026-11-03")]
    assert len(rows) == len(want)
    assert sum(int(row["sessions"]) for row in rows) == sum(d["sessions"] for d in want)
    assert sum(float(row["solar_wh"]) for row in rows) == sum(d["solar_wh"] for d in want)
    assert set(rows[0]) == set(export.DAY_COLUMNS)
    for bad in ({**q, "from": "2026-13-01"}, {**q, "to": "x"}, {"municipality": "trebinje"}):
        assert portal.http.get("/api/v1/export/bench-days.csv", params=bad).status_code == 400
    empty = {**q, "from": "2026-11-04", "to": "2026-11-01"}
    assert rows_of(portal.http.get("/api/v1/export/bench-days.csv", params=empty).text) == []


def test_the_gateway_learns_which_polls_are_hidden(portal: Any, tmp_path: Any) -> None:
    """The real gateway's poll sync against the real portal: a poll with results after its
    close reaches the gateway's store as hidden (so InfluxDB gets its choices only then)."""
    import sqlite3
    from types import SimpleNamespace

    from edge_gateway.polls import PollSync

    live = portal.make_poll(["nevesinje"])
    hidden = portal.make_poll(["nevesinje"], results="after_close")
    spool = tmp_path / "spool.sqlite"
    gateway = SimpleNamespace(
        m="nevesinje", cfg=SimpleNamespace(spool=SimpleNamespace(path=str(spool)))
    )
    cfg = SimpleNamespace(url=portal.url, token=portal.token("nevesinje"))
    sync = PollSync(gateway, cfg)  # type: ignore[arg-type]
    fetched = sync.fetch()
    assert {p["id"] for p in fetched} >= {live["id"], hidden["id"]}
    sync.note_hidden(fetched)
    assert sync.hidden == {hidden["id"]: hidden["closes"]}
    with sqlite3.connect(spool) as db:
        stored = dict(db.execute("SELECT poll, closes FROM hidden_polls").fetchall())
    assert stored == {hidden["id"]: hidden["closes"]}
