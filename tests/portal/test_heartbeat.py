"""Gateway heartbeats (issue 18, item 4): a bench's state is only as fresh as its gateway, so a
bench whose Raspberry Pi died shows *unknown*, not online. On SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from portal import checks, heartbeat, store

BEAT = {"version": "0.1.0", "ts": 1795712400, "lag_s": 2.5}


def english(portal: Any, path: str) -> str:
    """The page in English, leaving no language cookie in the shared client."""
    portal.http.cookies.clear()
    html = portal.http.get(path, params={"lang": "en"}).text
    portal.http.cookies.clear()
    return str(html)


def card(portal: Any, bench: str) -> str:
    html = english(portal, "/benches")
    match = re.search(
        rf'<article class="card bench" id="bench-{bench}">(.*?)</article>', html, re.S
    )
    assert match, f"no card for {bench}"
    return match.group(1)


def test_a_gateway_heartbeat_is_stored_and_listed_with_its_lag(any_portal: Any) -> None:
    portal = any_portal
    r = portal.http.put(
        "/api/v1/gateways/novi-grad",
        json={**BEAT, "version": "0.1.0+novi", "lag_s": 42.0},
        headers=portal.auth(portal.token("novi-grad")),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True}
    report = next(g for g in heartbeat.reports(portal.engine) if g.municipality == "novi-grad")
    assert (report.version, report.ts, report.lag_s) == ("0.1.0+novi", 1795712400, 42.0)
    assert abs(report.heard_at - time.time()) < 60
    html = english(portal, "/benches")
    row = re.search(r'<tr id="gateway-novi-grad">(.*?)</tr>', html, re.S)
    assert row and "Novi Grad" in row.group(1) and "42 s" in row.group(1)
    assert "0.1.0+novi" in row.group(1) and "Last heartbeat" in html


def test_a_heartbeat_for_another_municipality_or_from_the_admin_is_403(any_portal: Any) -> None:
    portal = any_portal
    r = portal.http.put(
        "/api/v1/gateways/mostar", json=BEAT, headers=portal.auth(portal.token("zepce"))
    )
    assert r.status_code == 403
    r = portal.http.put("/api/v1/gateways/mostar", json=BEAT, headers=portal.auth(portal.admin))
    assert r.status_code == 403
    assert portal.http.put("/api/v1/gateways/mostar", json=BEAT).status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": ""}, "version"),
        ({"version": "v" * 41}, "version"),
        ({"version": "1.0\u0000"}, "version"),
        ({"ts": -1}, "ts"),
        ({"ts": 2**53 + 1}, "ts"),
        ({"ts": "now"}, "ts"),
        ({"lag_s": -0.5}, "lag_s"),
        ({"lag_s": None}, "lag_s"),
    ],
)
def test_bad_heartbeats_are_400_naming_the_field(
    any_portal: Any, change: dict[str, Any], field: str
) -> None:
    portal = any_portal
    r = portal.http.put(
        "/api/v1/gateways/mostar",
        json={**BEAT, **change},
        headers=portal.auth(portal.token("mostar")),
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(field + ":")


def test_a_bench_shows_unknown_while_its_gateway_is_silent_for_15_minutes(
    any_portal: Any,
) -> None:
    portal = any_portal
    now = int(time.time())
    long_ago = now - heartbeat.STALE_AFTER_S - 60
    online = checks.BenchStatus("berkovici", True, long_ago, 80.0, "normal", "1.0.0")
    store.set_bench_status(portal.engine, "berkovici-02", online, now=long_ago)
    heartbeat.record(portal.engine, "berkovici", checks.Heartbeat("0.1.0", long_ago, 0.0), long_ago)
    html = card(portal, "berkovici-02")
    assert 'class="state unknown"' in html and ">unknown<" in html
    assert ">online<" not in html
    assert "silent for over 15 minutes" in html
    assert "Last heard" in html
    page = english(portal, "/benches/berkovici-02")
    assert 'class="state unknown"' in page
    # The gateway reports again: the bench's state holds again.
    r = portal.http.put(
        "/api/v1/gateways/berkovici",
        json={**BEAT, "ts": now},
        headers=portal.auth(portal.token("berkovici")),
    )
    assert r.status_code == 200
    html = card(portal, "berkovici-02")
    assert 'class="state online"' in html and ">online<" in html


def test_a_bench_state_written_now_is_online_without_a_heartbeat(any_portal: Any) -> None:
    # A gateway that predates heartbeats is heard through the states it sends.
    portal = any_portal
    state = {"municipality": "kostajnica", "online": True, "last_seen": int(time.time())}
    r = portal.http.put(
        "/api/v1/benches/kostajnica-03", json=state, headers=portal.auth(portal.token("kostajnica"))
    )
    assert r.status_code == 200
    assert 'class="state online"' in card(portal, "kostajnica-03")
