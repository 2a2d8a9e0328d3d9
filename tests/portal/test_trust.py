"""Trust boundaries (../shared/DESIGN.md principle 7; issue 18): a municipality's token writes
only its own registered benches, and the admin token writes no data. On SQLite and on
PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from portal import registry
from portal.cli import main
from provisioning.deployment import inventory_text


def post_votes(portal: Any, token: str, votes: list[dict[str, Any]]) -> Any:
    return portal.http.post("/api/v1/votes", json={"votes": votes}, headers=portal.auth(token))


def results(portal: Any, poll: dict[str, Any]) -> dict[str, Any]:
    r = portal.http.get(f"/api/v1/polls/{poll['id']}/results")
    assert r.status_code == 200, r.text
    return dict(r.json())


def day(bench: str, municipality: str, **change: Any) -> dict[str, Any]:
    return {
        "municipality": municipality,
        "bench": bench,
        "date": "2026-11-26",
        "solar_wh": 10.0,
        "charge_wh": 1.0,
        "sessions": 1,
        "seat_occ_s": 60,
        "touches": 3,
        "votes": 1,
        "uptime_pct": 90.0,
        **change,
    }


def test_a_token_cannot_preclaim_another_municipalitys_vote_id(
    any_portal: Any, make_vote: Any
) -> None:
    portal = any_portal
    poll = portal.make_poll(["mostar", "zepce"])
    # Žepče's token claims Mostar's next vote id, with the opposite choice.
    fake = make_vote(poll, "mostar-01", 1236, "no", municipality="zepce", boot=17)
    r = post_votes(portal, portal.token("zepce"), [fake])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": [{"id": "mostar-01/17/1236", "reason": "not_your_bench"}],
    }
    real = make_vote(poll, "mostar-01", 1236, "yes", boot=17)
    assert post_votes(portal, portal.token("mostar"), [real]).json() == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": [],
    }
    assert results(portal, poll)["choices"] == {"yes": 1, "no": 0}


def test_votes_of_an_unregistered_bench_are_rejected_not_stored(
    any_portal: Any, make_vote: Any
) -> None:
    portal = any_portal
    poll = portal.make_poll(["ravno"])
    stranger = make_vote(poll, "ravno-77", 1)  # a well-formed id, never registered
    own = make_vote(poll, "ravno-01", 1)
    body = post_votes(portal, portal.token("ravno"), [stranger, own]).json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"id": stranger["id"], "reason": "not_your_bench"}]
    assert results(portal, poll)["benches"] == {"ravno-01": {"yes": 1, "no": 0}}


def test_a_moved_benchs_vote_counts_once_when_its_new_gateway_sends_it_again(
    any_portal: Any, make_vote: Any
) -> None:
    """(bench, boot, seq) names a vote for ever (docs/protocol.md): once a bench has moved to
    another municipality (`bench add --move`), the vote its old gateway forwarded and its new
    one sends again is a duplicate, not a second vote."""
    portal = any_portal
    poll = portal.make_poll(["kostajnica", "prijedor"])
    registry.add_bench(portal.engine, "kostajnica-11", "kostajnica")
    cast = make_vote(poll, "kostajnica-11", 1, "no", boot=9)
    assert post_votes(portal, portal.token("kostajnica"), [cast]).json()["accepted"] == 1
    registry.add_bench(portal.engine, "kostajnica-11", "prijedor", move=True)
    again = {**cast, "municipality": "prijedor"}
    later = make_vote(poll, "kostajnica-11", 2, "yes", boot=9, municipality="prijedor")
    r = post_votes(portal, portal.token("prijedor"), [again, later])
    assert r.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert results(portal, poll)["benches"] == {"kostajnica-11": {"yes": 1, "no": 1}}


def test_bench_days_of_another_municipalitys_bench_are_rejected_items(any_portal: Any) -> None:
    portal = any_portal
    token = portal.auth(portal.token("zepce"))
    days = [day("mostar-03", "zepce"), day("zepce-03", "zepce", solar_wh=42.5)]
    r = portal.http.put("/api/v1/bench-days", json={"days": days}, headers=token)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "upserted": 1,
        "rejected": [{"bench": "mostar-03", "date": "2026-11-26", "reason": "not_your_bench"}],
    }
    with pytest.raises(LookupError):
        from portal import store

        store.bench_history(portal.engine, "mostar-03", int(time.time()))


def test_a_bench_state_for_another_municipalitys_bench_is_403(any_portal: Any) -> None:
    portal = any_portal
    state = {"municipality": "zepce", "online": True, "last_seen": int(time.time())}
    token = portal.auth(portal.token("zepce"))
    r = portal.http.put("/api/v1/benches/mostar-04", json=state, headers=token)
    assert r.status_code == 403
    assert "mostar-04" in r.json()["error"]
    r = portal.http.put("/api/v1/benches/zepce-77", json=state, headers=token)  # unregistered
    assert r.status_code == 403
    assert portal.http.put("/api/v1/benches/zepce-04", json=state, headers=token).status_code == 200


def test_the_admin_token_writes_no_votes_days_or_bench_states(
    any_portal: Any, make_vote: Any
) -> None:
    portal = any_portal
    poll = portal.make_poll(["trebinje"])
    admin = portal.auth(portal.admin)
    r = portal.http.post(
        "/api/v1/votes", json={"votes": [make_vote(poll, "trebinje-05", 1)]}, headers=admin
    )
    assert r.status_code == 403
    r = portal.http.put(
        "/api/v1/bench-days", json={"days": [day("trebinje-05", "trebinje")]}, headers=admin
    )
    assert r.status_code == 403
    state = {"municipality": "trebinje", "online": True}
    assert (
        portal.http.put("/api/v1/benches/trebinje-05", json=state, headers=admin).status_code == 403
    )
    assert results(portal, poll)["total"] == 0


def test_bench_add_is_idempotent_and_a_move_needs_move(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "p.sqlite")
    assert main(["bench", "add", "mostar-01", "mostar", "--db", db]) == 0
    assert main(["bench", "add", "mostar-01", "mostar", "--db", db]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["bench", "add", "mostar-01", "zepce", "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("klupa portal: ") and "--move" in err and len(err.splitlines()) == 1
    assert main(["bench", "add", "mostar-01", "zepce", "--move", "--db", db]) == 0
    assert main(["bench", "add", "Mostar 01", "mostar", "--db", db]) == 2
    assert main(["bench", "add", "mostar-02", "mostar", "--vote-cap", "0", "--db", db]) == 2
    from portal.db import open_database

    assert [(b.bench, b.municipality) for b in registry.registered(open_database(db))] == [
        ("mostar-01", "zepce")
    ]


def test_bench_import_registers_the_deployments_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "p.sqlite")
    deployment = tmp_path / "deployment"
    deployment.mkdir()
    (deployment / "inventory.toml").write_text(inventory_text(), encoding="utf-8")
    assert main(["bench", "import", str(deployment / "inventory.toml"), "--db", db]) == 0
    assert "added: 12" in capsys.readouterr().out
    assert main(["bench", "import", str(deployment), "--db", db]) == 0  # the folder works too
    assert "unchanged: 12" in capsys.readouterr().out
    from portal.db import open_database

    engine = open_database(db)
    found = {b.bench: b.municipality for b in registry.registered(engine)}
    assert found["mostar-01"] == "mostar" and found["novi-grad-01"] == "novi-grad"
    assert len(found) == 12
    # An inventory that moves a bench is refused whole, unless --move.
    registry.add_bench(engine, "ravno-02", "ravno")
    moved = inventory_text().replace(
        '[benches.trebinje-01]\nmunicipality = "trebinje"',
        '[benches.ravno-02]\nmunicipality = "trebinje"',
    )
    (deployment / "inventory.toml").write_text(moved, encoding="utf-8")
    assert main(["bench", "import", str(deployment), "--db", db]) == 2
    assert "ravno-02" in capsys.readouterr().err
    assert main(["bench", "import", str(deployment), "--move", "--db", db]) == 0
    assert {b.bench: b.municipality for b in registry.registered(engine)}["ravno-02"] == "trebinje"
    assert main(["bench", "import", str(tmp_path / "nowhere.toml"), "--db", db]) == 2
