"""The server-rendered pages: polls with results, benches, a bench, language, anomalies."""

from __future__ import annotations

import datetime
import re
from typing import Any
from zoneinfo import ZoneInfo

from portal import anomaly, registry, store
from tests.portal.conftest import bench_day, today_for_a_minute


def page(portal: Any, path: str, lang_cookie: str | None = None) -> str:
    portal.http.cookies.clear()  # the shared client would keep a language chosen earlier
    headers = {"Cookie": f"lang={lang_cookie}"} if lang_cookie else {}
    r = portal.http.get(path, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "<script" not in r.text
    return r.text


def poll_article(html: str, municipality: str, poll_id: str) -> str:
    match = re.search(
        rf'<article class="card poll" id="{municipality}--{poll_id}">(.*?)</article>', html, re.S
    )
    assert match, f"no card for {poll_id} under {municipality}"
    return match.group(1)


def test_front_page_shows_polls_with_bar_charts_totals_and_benches(
    portal: Any, make_vote: Any
) -> None:
    poll = portal.make_poll(["zavidovici"])
    votes = [
        make_vote(poll, "zavidovici-01", 1),
        make_vote(poll, "zavidovici-01", 2, "no"),
        make_vote(poll, "zavidovici-02", 1),
    ]
    portal.http.post(
        "/api/v1/votes", json={"votes": votes}, headers=portal.auth(portal.token("zavidovici"))
    )
    html = page(portal, "/")
    assert "<h2>Zavidovići</h2>" in html
    card = poll_article(html, "zavidovici", poll["id"])
    assert "Da li želite više rasvjete u parku?" in card
    assert "Да ли желите више расвјете у парку?" in card  # Serbian Cyrillic alongside
    assert "<svg" in card and "2 · 67 %" in card and "1 · 33 %" in card
    assert "Ukupno glasova: 3" in card
    assert 'href="/benches/zavidovici-02"' in card
    assert "otvorena" in card


def test_results_hidden_until_close_are_not_on_the_page(portal: Any, make_vote: Any) -> None:
    poll = portal.make_poll(["jablanica"], results="after_close")
    portal.http.post(
        "/api/v1/votes",
        json={"votes": [make_vote(poll, "jablanica-01", 1)]},
        headers=portal.auth(portal.token("jablanica")),
    )
    card = poll_article(page(portal, "/"), "jablanica", poll["id"])
    assert "Rezultati se objavljuju nakon zatvaranja" in card
    assert "<svg" not in card and "Ukupno" not in card


def test_english_is_one_link_away_and_the_choice_is_remembered(portal: Any) -> None:
    poll = portal.make_poll(["ravno"])
    html = page(portal, "/")
    assert 'href="?lang=en"' in html
    portal.http.cookies.clear()
    r = portal.http.get("/?lang=en")
    assert r.cookies.get("lang") == "en"
    assert "Do you want more lighting in the park?" in poll_article(r.text, "ravno", poll["id"])
    assert "Total votes" in r.text
    # The cookie keeps English on the next page, and ?lang=bs switches back.
    assert "<h1>Benches</h1>" in page(portal, "/benches", lang_cookie="en")
    assert "<h1>Klupe</h1>" in page(portal, "/benches")
    portal.http.cookies.clear()
    back = portal.http.get("/?lang=bs", headers={"Cookie": "lang=en"})
    assert "<h1>Ankete</h1>" in back.text and back.cookies.get("lang") == "bs"
    portal.http.cookies.clear()


def test_a_bench_voting_far_above_its_own_history_is_flagged(portal: Any, make_vote: Any) -> None:
    now = today_for_a_minute()  # today's votes (at now) and the page's today: one local day
    poll = portal.make_poll(["maglaj"], opens=now - 10 * 86400)
    votes, seq = [], 0
    for bench, today in (("maglaj-07", 60), ("maglaj-08", 6)):
        for days_ago in range(1, 7):  # six ordinary days of about 5 votes
            for _ in range(5):
                seq += 1
                votes.append(make_vote(poll, bench, seq, ts=now - days_ago * 86400))
        for _ in range(today):
            seq += 1
            votes.append(make_vote(poll, bench, seq, ts=now))
    r = portal.http.post(
        "/api/v1/votes", json={"votes": votes}, headers=portal.auth(portal.token("maglaj"))
    )
    assert r.json()["accepted"] == len(votes)
    assert store.vote_spikes(portal.engine, ["maglaj-07", "maglaj-08"], now) == {"maglaj-07"}
    card = poll_article(page(portal, "/"), "maglaj", poll["id"])
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<tr><td><a href="/benches/([a-z0-9-]+)">.*?</tr>', card, re.S)
    }
    assert "neuobičajeno mnogo glasova" in rows["maglaj-07"]
    assert "neuobičajeno" not in rows["maglaj-08"]


def test_a_vote_before_the_clock_change_counts_on_its_own_local_day(
    portal: Any, make_vote: Any
) -> None:
    """The spike rule's days are local days: after the October change (UTC+2 -> UTC+1) a vote
    at 00:30 on a summer-time day is on that day, not the one before, as it was when every
    day was cut at today's offset."""
    local = ZoneInfo("Europe/Sarajevo")
    summer = int(datetime.datetime(2026, 10, 20, 0, 30, tzinfo=local).timestamp())
    winter = int(datetime.datetime(2026, 10, 27, 0, 30, tzinfo=local).timestamp())
    now = int(datetime.datetime(2026, 10, 28, 12, 0, tzinfo=local).timestamp())
    poll = portal.make_poll(["maglaj"], opens=summer - 86400, closes=now + 86400)
    votes = [make_vote(poll, "maglaj-09", seq, ts=ts) for seq, ts in ((1, summer), (2, winter))]
    r = portal.http.post(
        "/api/v1/votes", json={"votes": votes}, headers=portal.auth(portal.token("maglaj"))
    )
    assert r.json()["accepted"] == 2
    daily, today = store.daily_votes(portal.engine, ["maglaj-09"], now, 15)
    epoch = datetime.date(1970, 1, 1)
    oct_20, oct_27 = ((datetime.date(2026, 10, d) - epoch).days for d in (20, 27))
    assert daily == {"maglaj-09": {oct_20: 1, oct_27: 1}}
    assert today == (datetime.date(2026, 10, 28) - epoch).days


def test_spike_rule_needs_history_and_a_real_jump() -> None:
    assert anomaly.is_spike([5, 4, 6, 5], 40)
    assert not anomaly.is_spike([5, 4, 6, 5], 15)  # too few votes to mean anything
    assert not anomaly.is_spike([30, 35, 40], 60)  # a busy bench having a busy day
    assert not anomaly.is_spike([5, 5], 60)  # not enough history to judge
    # Quiet days between votes count as zero; a bench first seen today is not judged.
    assert anomaly.spiking_benches({"a": {10: 6, 14: 40}, "b": {14: 90}}, 14) == {"a"}


def test_benches_page_and_a_bench_page(portal: Any) -> None:
    token = portal.auth(portal.token("novi-grad"))
    now = today_for_a_minute()  # the page's today is the days' today
    today = datetime.datetime.fromtimestamp(now, store.LOCAL).date()
    status = {
        "municipality": "novi-grad",
        "online": True,
        "last_seen": now,
        "soc": 64.0,
        "power": "saver",
        "fw": "1.2.3",
    }
    assert portal.http.put("/api/v1/benches/novi-grad-01", json=status, headers=token).is_success
    days = [
        {
            "municipality": "novi-grad",
            "bench": "novi-grad-01",
            "date": (today - datetime.timedelta(days=n)).isoformat(),
            "solar_wh": 100.0 + n,
            "charge_wh": 40.5,
            "sessions": 7,
            "seat_occ_s": 5400,
            "touches": 12,
            "votes": 3,
            "uptime_pct": 99.0,
        }
        for n in range(5)
    ]
    assert portal.http.put("/api/v1/bench-days", json={"days": days}, headers=token).is_success
    html = page(portal, "/benches")
    card = re.search(r'<a href="/benches/novi-grad-01">.*?</article>', html, re.S)
    assert card
    text = re.sub(r"\s+", " ", card.group(0))
    for expected in (
        "Novi Grad",
        "na mreži",
        "64 %",
        "štednja",
        "100,0 Wh",  # Bosnian numbers: a decimal comma
        "<dd>7</dd>",
        "1,5 h",
        "1.2.3",
    ):
        assert expected in text, expected
    bench = page(portal, "/benches/novi-grad-01?lang=en")
    assert bench.count("<svg") == 5
    for title in (
        "Solar energy (Wh)",
        "Charging energy (Wh)",
        "Phone charging sessions",
        "Votes",
        "Uptime (%)",
    ):
        assert title in bench
    assert f"{today.isoformat()[5:]}: 100" in bench  # today's solar bar, with its value
    missing = portal.http.get("/benches/no-such-bench")
    assert missing.status_code == 404 and "<html" in missing.text


def test_a_moved_bench_shows_once_where_it_is_registered_now(portal: Any) -> None:
    """After `bench add --move` the bench's last state from its former municipality must not
    stay on the benches page as a second card (online for ever while that town's gateway is
    heard), and the bench's own page is its new municipality's."""
    today = datetime.date.today().isoformat()

    def report(municipality: str, online: bool, soc: float) -> None:
        token = portal.auth(portal.token(municipality))
        state = {"municipality": municipality, "online": online, "soc": soc}
        r = portal.http.put("/api/v1/benches/berkovici-11", json=state, headers=token)
        assert r.json() == {"ok": True}
        day = bench_day("berkovici-11", today, municipality=municipality)
        r = portal.http.put("/api/v1/bench-days", json={"days": [day]}, headers=token)
        assert r.json() == {"upserted": 1, "rejected": []}

    registry.add_bench(portal.engine, "berkovici-11", "berkovici")
    report("berkovici", True, 91.0)
    registry.add_bench(portal.engine, "berkovici-11", "trebinje", move=True)
    report("trebinje", False, 12.0)
    html = page(portal, "/benches?lang=en")
    cards = re.findall(
        r'<article class="card bench" id="bench-berkovici-11">(.*?)</article>', html, re.S
    )
    assert len(cards) == 1, cards
    assert "Trebinje" in cards[0] and "offline" in cards[0] and "12 %" in cards[0]
    bench = page(portal, "/benches/berkovici-11?lang=en")
    heading = re.search(r"<h1>(.*?)</h1>", bench, re.S)
    assert heading and "Trebinje" in heading.group(1), heading
