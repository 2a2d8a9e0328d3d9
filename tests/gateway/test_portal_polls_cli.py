"""Portal forwarding and poll distribution against a real HTTP server, and the CLI commands."""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.cli import main
from edge_gateway.service import Gateway
from edge_gateway.store import Store
from klupa.services import Broker, free_port
from testkit.gateway import (
    Publisher,
    RecordingPortal,
    Redirector,
    event,
    one_day_now,
    telemetry,
    topic_of,
    vote,
    wait_until,
)
from testkit.polls import protocol_poll


def portal_extra(url: str) -> str:
    return f'[portal]\nurl = "{url}"\ntoken = "portal-token"\npoll_sync_s = 1\n'


def test_votes_reach_the_portal_once_through_500s_and_timeouts_with_days_and_state(
    mosquitto: Broker,
    portal: RecordingPortal,
    gateway_factory: Callable[..., Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    portal.fail_next = 3
    portal.slow_next = 1
    gw = gateway_factory(
        mosquitto.port, portal_extra(portal.url), sink_options={"portal": {"timeout_s": 0.5}}
    )
    now = one_day_now(before=300) - 300  # the records (now .. now + 22): one bench-days row
    pub = Publisher(mosquitto.host, mosquitto.port)
    pub.publish(
        topic_of("mostar-01", "status"),
        {"v": 1, "bench": "mostar-01", "state": "online", "fw": "1.0.0"},
    )
    pub.publish(topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 4, 1, now))
    pub.publish(
        topic_of("mostar-01", "event"),
        event("mostar-01", 4, 2, now, "session", port=1, s=60, wh=1.5),
    )
    for s in range(3, 23):
        pub.publish(
            topic_of("mostar-01", "vote"),
            vote("mostar-01", 4, s, now + s, "mostar-park", "yes" if s % 3 else "no"),
        )
    pub.publish(topic_of("mostar-01", "vote"), vote("mostar-01", 4, 23, now, "unknown-poll", "yes"))
    pub.publish(
        topic_of("mostar-01", "vote"), vote("mostar-01", 4, 5, now + 5, "mostar-park", "no")
    )  # re-sent
    pub.wait_published()
    wait_until(lambda: len(portal.votes) == 20, 30, what="20 votes at the portal")
    assert portal.slow_next == 0  # one answer came too late: that batch was sent again

    # The sinks run in the forwarder process; their log lines reach the gateway's log.
    def retries() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "edge_gateway.sink"]

    wait_until(lambda: any("portal: will retry: timed out" in m for m in retries()), 10)
    assert any("portal: will retry: HTTP 500" in m for m in retries()), retries()
    posts = [v["id"] for body in portal.of("POST", "/api/v1/votes") for v in body["votes"]]
    assert max(posts.count(i) for i in set(posts)) >= 2
    assert sorted(portal.votes) == sorted(f"mostar-01/4/{s}" for s in range(3, 23))
    v = portal.votes["mostar-01/4/3"]
    assert v == {
        "id": "mostar-01/4/3",
        "municipality": "mostar",
        "bench": "mostar-01",
        "poll": "mostar-park",
        "choice": "no",
        "ts": now + 3,
    }
    wait_until(lambda: gw.store.quarantine_counts().get("portal_rejected: unknown poll") == 1, 10)

    def last_day() -> dict[str, Any] | None:
        days = [d for body in portal.of("PUT", "/api/v1/bench-days") for d in body["days"]]
        return next((d for d in reversed(days) if d["votes"] == 21), None)

    # the bench-days PUT follows the votes POST of the same batch
    last = wait_until(last_day, 10, what="the day with every vote")
    assert (last["bench"], last["sessions"], last["charge_wh"]) == ("mostar-01", 1, 0.076)
    assert set(last) == {
        "municipality",
        "bench",
        "date",
        "solar_wh",
        "charge_wh",
        "sessions",
        "seat_occ_s",
        "touches",
        "votes",
        "uptime_pct",
    }
    state = wait_until(lambda: portal.of("PUT", "/api/v1/benches/mostar-01"), 10)[-1]
    assert state["online"] is True and state["soc"] == 78.5 and state["power"] == "normal"
    assert state["fw"] == "1.0.0" and state["municipality"] == "mostar"
    # The heartbeat, so the portal knows the benches' states still hold.
    beat = wait_until(lambda: portal.of("PUT", "/api/v1/gateways/mostar"), 10)[0]
    assert set(beat) == {"version", "ts", "lag_s"}
    assert abs(beat["ts"] - time.time()) < 120 and beat["lag_s"] >= 0


def poll(pid: str, opens: int, closes: int) -> dict[str, Any]:
    question = {"bs": "Pitanje?", "en": "Question?"}
    return protocol_poll(pid, opens, closes, question=question, municipalities=["mostar"])


def send_votes(
    pub: Publisher, bench: str, boot: int, seqs: range, t0: int, poll: str = "p-one"
) -> None:
    """``bench``'s yes votes ``seqs`` in ``poll`` from ``boot`` (vote s at t0 + s), published."""
    for s in seqs:
        pub.publish(topic_of(bench, "vote"), vote(bench, boot, s, t0 + s, poll, "yes"))
    pub.wait_published()


def quarantined(gw: Gateway) -> list[tuple[str, str]]:
    st = Store(gw.cfg.spool.path, readonly=True)
    try:
        return st.conn.execute("SELECT topic, reason FROM quarantine ORDER BY id").fetchall()
    finally:
        st.close()


def test_a_vote_the_portal_fails_on_is_quarantined_and_the_rest_go_on(
    mosquitto: Broker, portal: RecordingPortal, gateway_factory: Callable[..., Gateway]
) -> None:
    """A value the portal's database cannot take made it answer 500 for ever, and the whole
    municipality's forwarding stalled behind it. Now the sink finds the row (the portal answers
    without it), and after the same 500 on three passes quarantines it with the answer."""
    portal.poison_ids = {"mostar-01/4/7"}
    gw = gateway_factory(mosquitto.port, portal_extra(portal.url))
    now = one_day_now(before=300) - 300
    pub = Publisher(mosquitto.host, mosquitto.port)
    send_votes(pub, "mostar-01", 4, range(3, 13), now)
    good = {f"mostar-01/4/{s}" for s in range(3, 13)} - portal.poison_ids
    wait_until(lambda: set(portal.votes) == good, 30, what="every vote but the poisoned one")
    wait_until(lambda: quarantined(gw), 10, what="the poisoned vote in quarantine")
    assert [r for _, r in quarantined(gw)] == [
        'portal_500: HTTP 500: {"error": "internal server error"}'
    ]
    pub.publish(topic_of("mostar-01", "vote"), vote("mostar-01", 4, 13, now + 13, "p-one", "no"))
    pub.wait_published()
    wait_until(lambda: "mostar-01/4/13" in portal.votes, 15, what="a later vote")
    pub.close()


def test_a_bench_whose_votes_the_portal_rejects_by_the_hundred_does_not_flood_the_log(
    mosquitto: Broker,
    portal: RecordingPortal,
    gateway_factory: Callable[..., Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each vote the portal rejected (an unknown poll, over the bench's cap) was a log line:
    a bench pressing out votes, or one whose credentials were stolen, wrote the journal on
    the SD card a line per vote. Every one is still quarantined with the portal's reason."""
    from edge_gateway.loglimit import BURST

    caplog.set_level(logging.INFO, logger="edge_gateway")
    gw = gateway_factory(mosquitto.port, portal_extra(portal.url))
    now = one_day_now(before=300) - 300
    pub = Publisher(mosquitto.host, mosquitto.port)
    send_votes(pub, "mostar-01", 6, range(1, 61), now, poll="unknown-poll")
    wait_until(lambda: len(quarantined(gw)) == 60, 30, what="all 60 votes quarantined")
    lines = [r.getMessage() for r in caplog.records]
    assert len([t for t in lines if t.startswith("portal rejected vote mostar-01/")]) == BURST
    assert len([t for t in lines if "the rest are counted, not logged" in t]) == 1
    pub.close()


def test_a_portal_url_that_redirects_gets_neither_the_token_nor_the_votes(
    mosquitto: Broker, portal: RecordingPortal, gateway_factory: Callable[..., Gateway]
) -> None:
    """The sinks followed redirects: the portal's token went to wherever a redirect pointed
    (another host, plain http), and a vote POST came back as a GET whose answer, had it the
    portal's shape, would have marked the votes delivered. Now a 3xx is retried, the token
    stays home, and the votes wait."""
    elsewhere = RecordingPortal()  # another host: it answers in the portal's shape
    elsewhere.token = "portal-token"
    front = Redirector(elsewhere.url.replace("127.0.0.1", "localhost"))
    try:
        gw = gateway_factory(mosquitto.port, portal_extra(front.url))
        pub = Publisher(mosquitto.host, mosquitto.port)
        send_votes(pub, "mostar-01", 7, range(1, 3), one_day_now(before=300) - 300)
        wait_until(lambda: front.hits >= 6, 30, what="the sink and the poll sync to try")
        assert elsewhere.requests == []  # no token, no request at all
        wait_until(lambda: "redirected" in gw.sinks[0].last_error, 10, what="the reason")
        assert gw.sinks[0].watermark == 0 and portal.votes == {}  # the votes wait
        pub.close()
    finally:
        for server in (front, elsewhere):
            server.httpd.shutdown()
            server.httpd.server_close()


def test_a_portal_that_is_down_loses_nothing_and_quarantines_nothing(
    mosquitto: Broker, portal: RecordingPortal, gateway_factory: Callable[..., Gateway]
) -> None:
    portal.down = True  # every request 500, the probe's too
    gw = gateway_factory(mosquitto.port, portal_extra(portal.url))
    now = one_day_now(before=300) - 300
    pub = Publisher(mosquitto.host, mosquitto.port)
    send_votes(pub, "mostar-01", 5, range(1, 6), now)
    wait_until(lambda: len(portal.of("POST", "/api/v1/votes")) >= 5, 30, what="five tries")
    assert quarantined(gw) == [] and portal.votes == {}
    with portal.lock:
        portal.down = False
    wait_until(lambda: len(portal.votes) == 5, 30, what="all five once the portal is back")
    pub.close()


def test_a_day_the_portal_refuses_does_not_keep_the_others_from_it(
    mosquitto: Broker,
    portal: RecordingPortal,
    gateway_factory: Callable[..., Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    portal.refuse_days_of = {"mostar-03"}
    portal.fail_next = 10**6  # 500s until one request carries both benches' days
    gateway_factory(mosquitto.port, portal_extra(portal.url))
    now = one_day_now(before=60) - 60
    pub = Publisher(mosquitto.host, mosquitto.port)
    for b in ("mostar-03", "mostar-04"):
        pub.publish(topic_of(b, "telemetry"), telemetry(b, 2, 1, now))
    pub.wait_published()
    wait_until(
        lambda: any(len(b["days"]) == 2 for b in portal.of("PUT", "/api/v1/bench-days")),
        15,
        what="both days in one request",
    )
    with portal.lock:
        portal.fail_next = 0
    wait_until(
        lambda: "mostar-04" in [d["bench"] for d in portal.days], 15, what="the good bench's day"
    )
    assert "mostar-03" not in [d["bench"] for d in portal.days]
    refused = [r.getMessage() for r in caplog.records if "portal refused the day" in r.getMessage()]
    assert refused and all("of mostar-03" in m for m in refused), refused


def watch_polls(mosquitto: Broker) -> Callable[[], list[Any]]:
    """The ids of the polls published on Mostar's poll topic from now on, as they come."""
    sub = Publisher(mosquitto.host, mosquitto.port)
    sub.subscribe("klupa/v1/mostar/poll")

    def poll_ids() -> list[Any]:
        with sub.lock:
            return [json.loads(p).get("id") for _, p, _ in sub.received]

    return poll_ids


def test_an_answer_that_is_not_the_portals_is_retried_never_taken_as_delivered(
    mosquitto: Broker,
    portal: RecordingPortal,
    gateway_factory: Callable[..., Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A wrong [portal] url (a web server's page), then a JSON answer that accounts for none of
    # the votes: both 200, and neither may mark a vote delivered.
    portal.wrong_next = 10**6
    gw = gateway_factory(mosquitto.port, portal_extra(portal.url))
    now = one_day_now(before=120) - 120
    pub = Publisher(mosquitto.host, mosquitto.port)
    send_votes(pub, "mostar-02", 8, range(1, 6), now, poll="mostar-park")

    def retries() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "edge_gateway.sink"]

    wait_until(lambda: any("is not the portal API's" in m for m in retries()), 15)
    assert portal.votes == {}
    with portal.lock:
        portal.wrong_body = b'{"accepted": 0, "duplicates": 0, "rejected": []}'
    wait_until(lambda: any("does not account for" in m for m in retries()), 15)
    assert portal.votes == {}
    with portal.lock:
        portal.wrong_next = 0
    wait_until(lambda: len(portal.votes) == 5, 30, what="every vote, once the answers are right")
    assert sorted(portal.votes) == [f"mostar-02/8/{s}" for s in range(1, 6)]
    assert gw.store.quarantine_counts() == {}


def test_the_poll_that_opened_last_is_published_retained_then_the_null_poll(
    mosquitto: Broker, portal: RecordingPortal, gateway_factory: Callable[..., Gateway]
) -> None:
    now = int(time.time())
    portal.polls = [
        poll("mostar-older", now - 1000, now + 1000),
        poll("mostar-newer-b", now - 100, now + 1000),
        poll("mostar-newer-a", now - 100, now + 1000),
        poll("mostar-future", now + 1000, now + 2000),
    ]
    gateway_factory(mosquitto.port, portal_extra(portal.url))
    sub = Publisher(mosquitto.host, mosquitto.port)
    sub.subscribe("klupa/v1/mostar/poll")

    def last_poll() -> dict[str, Any] | None:
        with sub.lock:
            got = [(json.loads(p), r) for t, p, r in sub.received]
        return got[-1][0] if got else None

    first = wait_until(last_poll, 10, what="a poll")
    assert first["id"] == "mostar-newer-a" and "municipalities" not in first
    assert first["options"][0] == {"id": "yes", "label": {"bs": "Da"}}
    assert any(r.startswith("/api/v1/polls?municipality=mostar") for _, r, _, _ in portal.requests)
    portal.polls = [poll("mostar-future", now + 1000, now + 2000)]
    wait_until(lambda: (last_poll() or {}).get("id", "x") is None, 10, what="the null poll")
    assert last_poll() == {"v": 1, "id": None}
    late = Publisher(mosquitto.host, mosquitto.port)  # a reconnecting bench sees it retained
    late.subscribe("klupa/v1/mostar/poll")
    wait_until(lambda: late.received, 5)
    assert late.received[0][1] == b'{"v":1,"id":null}' and late.received[0][2] is True


def test_a_polls_answer_of_the_wrong_shape_is_logged_and_the_sync_goes_on(
    mosquitto: Broker,
    portal: RecordingPortal,
    gateway_factory: Callable[..., Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = int(time.time())
    portal.polls = ["not a poll", 3]  # type: ignore[list-item]
    gateway_factory(mosquitto.port, portal_extra(portal.url))
    wait_until(
        lambda: any("not a list of polls" in r.getMessage() for r in caplog.records),
        10,
        what="the bad answer named in the log",
    )
    portal.polls = [poll("mostar-park", now - 100, now + 1000)]
    poll_ids = watch_polls(mosquitto)
    wait_until(lambda: "mostar-park" in poll_ids(), 10, what="the poll once the answer is good")


def test_a_failure_in_the_poll_fetch_does_not_end_poll_distribution(
    mosquitto: Broker,
    portal: RecordingPortal,
    gateway_factory: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edge_gateway.polls import PollSync

    real = PollSync.fetch
    calls = []

    def flaky(self: PollSync) -> list[dict[str, Any]]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the fetch")
        return real(self)

    monkeypatch.setattr(PollSync, "fetch", flaky)
    now = int(time.time())
    portal.polls = [poll("mostar-park", now - 100, now + 1000)]
    gateway_factory(mosquitto.port, portal_extra(portal.url))
    poll_ids = watch_polls(mosquitto)
    wait_until(lambda: "mostar-park" in poll_ids(), 10, what="the poll after the failed fetch")
    assert len(calls) >= 2


def test_the_retained_poll_comes_back_when_deleted_or_lost_with_the_broker(
    mosquitto: Broker, portal: RecordingPortal, gateway_factory: Callable[..., Gateway]
) -> None:
    """A bench that connects must find the poll in force retained on the poll topic. When the
    retained message is deleted (an empty retained payload from another client) or the broker
    restarts without it (killed before its autosave), the gateway publishes it again."""
    now = int(time.time())
    portal.polls = [poll("mostar-park", now - 100, now + 1000)]
    gw = gateway_factory(mosquitto.port, portal_extra(portal.url))

    def retained() -> bytes | None:
        # What a bench connecting now is given on the poll topic (None: nothing retained).
        sub = Publisher(mosquitto.host, mosquitto.port)
        try:
            sub.subscribe("klupa/v1/mostar/poll")
            time.sleep(0.3)
            with sub.lock:
                got = [p for _, p, r in sub.received if r]
            return got[0] if got else None
        finally:
            sub.close()

    def poll_id() -> str | None:
        got = retained()
        return json.loads(got).get("id") if got else None

    wait_until(lambda: poll_id() == "mostar-park", 10, what="the poll retained")
    other = Publisher(mosquitto.host, mosquitto.port)
    other.publish("klupa/v1/mostar/poll", b"", retain=True)  # deletes the retained message
    other.wait_published()
    other.close()
    wait_until(lambda: poll_id() == "mostar-park", 10, what="the poll after the deletion")
    mosquitto.kill()  # before its autosave: the retained poll is gone with it
    try:
        mosquitto.start()
        assert retained() is None  # the broker really lost it
        wait_until(lambda: poll_id() == "mostar-park", 20, what="the poll after the restart")
    finally:
        if not mosquitto.running:
            mosquitto.start()
    assert gw.poll_sync is not None and gw.poll_sync.published is not None


def test_cmd_publishes_a_command_and_prints_the_ack(
    mosquitto: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f'municipality = "mostar"\n[mqtt]\nport = {mosquitto.port}\n[spool]\npath = "s.sqlite"\n'
    )
    bench = Publisher(mosquitto.host, mosquitto.port, client_id="mostar-01")
    bench.subscribe(topic_of("mostar-01", "cmd"))

    def answer(c: Any, u: Any, msg: Any) -> None:
        cmd = json.loads(msg.payload)
        bench.received.append((msg.topic, msg.payload, False))
        ack = {
            "v": 1,
            "bench": "mostar-01",
            "boot": 1,
            "seq": 9,
            "ts": int(time.time()),
            "id": cmd["id"],
            "ok": True,
            "detail": "period 300",
        }
        c.publish(topic_of("mostar-01", "cmd/ack"), json.dumps(ack), qos=1)

    bench.client.on_message = answer
    assert main(["cmd", "--config", str(cfg), "mostar-01", "set", "period=300"]) == 0
    assert "mostar-01: set ok: period 300" in capsys.readouterr().out
    sent = json.loads(bench.received[-1][1])
    assert sent["op"] == "set" and sent["args"] == {"period": 300} and sent["id"].startswith("c-")
    # A setting the bench would refuse is refused here, named, and never sent.
    before = len(bench.received)
    for arg, why in [
        ("period=5", "period out of range 10..3600"),
        ("colour=1", "unknown setting 'colour'"),
        ("cooldown=2.5", "cooldown must be a whole number"),
        ("vote_cap=many", "vote_cap must be a number"),
    ]:
        assert main(["cmd", "--config", str(cfg), "mostar-01", "set", arg]) == 2
        assert why in capsys.readouterr().err
    time.sleep(0.3)
    assert len(bench.received) == before
    bench.close()
    assert main(["cmd", "--config", str(cfg), "--timeout", "0.5", "mostar-01", "ping"]) == 1
    err = capsys.readouterr().err
    assert "no answer from mostar-01" in err and "not queued for offline benches" in err
    assert main(["cmd", "--config", str(cfg), "mostar-01", "dance"]) == 2


def test_cmd_prints_a_bench_s_ack_without_its_terminal_control(
    mosquitto: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`klupa gateway cmd` printed the ack's `detail` as the bench wrote it: a bench could clear
    the operator's screen, retitle the terminal or forge lines after the answer."""
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f'municipality = "mostar"\n[mqtt]\nport = {mosquitto.port}\n[spool]\npath = "s.sqlite"\n'
    )
    bench = Publisher(mosquitto.host, mosquitto.port, client_id="mostar-01")
    bench.subscribe(topic_of("mostar-01", "cmd"))
    evil = "done\x1b[2J\x1b]0;pwned\x07\u202e\nmostar-02: reboot ok"
    ok = [True, False]

    def answer(c: Any, u: Any, msg: Any) -> None:
        cmd = json.loads(msg.payload)
        ack = {"v": 1, "bench": "mostar-01", "boot": 1, "seq": 9, "ts": int(time.time())}
        ack |= {"id": cmd["id"], "ok": ok.pop(0), "detail": evil}
        c.publish(topic_of("mostar-01", "cmd/ack"), json.dumps(ack), qos=1)

    bench.client.on_message = answer
    assert main(["cmd", "--config", str(cfg), "mostar-01", "selftest"]) == 0
    assert main(["cmd", "--config", str(cfg), "mostar-01", "selftest"]) == 1
    printed = capsys.readouterr()
    for text in (printed.out, printed.err):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
        assert "done\\x1b[2J" in text and "\nmostar-02" not in text
    bench.close()


def test_status_metrics_and_ota(
    mosquitto: Broker,
    tmp_path: Path,
    gateway_factory: Callable[..., Gateway],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ota = tmp_path / "ota"
    ota.mkdir()
    (ota / "manifest.json").write_text('{"version":"1.0.1"}')
    mport, oport = free_port(), free_port()
    gw = gateway_factory(
        mosquitto.port,
        f'[health]\nexpected = ["mostar-01", "mostar-09"]\n[ota]\ndir = "{ota}"\nport = {oport}\n[metrics]\nport = {mport}\n',
    )
    pub = Publisher(mosquitto.host, mosquitto.port)
    pub.publish(topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 1, 1, int(time.time())))
    pub.wait_published()
    wait_until(lambda: gw.counts["accepted"] == 1, 5)
    assert main(["status", "--config", gw.cfg.path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["bench", "online", "last", "seen", "SoC", "power", "firmware"]
    assert out[1].split()[:2] == ["mostar-01", "yes"] and "78.5 %" in out[1] and "normal" in out[1]
    assert out[2].split()[:3] == ["mostar-09", "never", "seen"]
    assert out[-1].startswith("spool depth: 0 rows")
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    assert (
        "klupa_gateway_received_total 1" in text
        and 'klupa_bench_online{bench="mostar-01"} 1' in text
    )
    body = urllib.request.urlopen(f"http://127.0.0.1:{oport}/manifest.json", timeout=5).read()
    assert body == b'{"version":"1.0.1"}'
    # Read-only, and nothing outside the bundle directory: the store beside it stays private.
    (tmp_path / "secret.txt").write_text("not for benches")
    for method, path in [
        ("GET", "/../secret.txt"),
        ("GET", "/%2e%2e/secret.txt"),
        ("GET", "/..%2fsecret.txt"),
        ("PUT", "/manifest.json"),
        ("POST", "/manifest.json"),
    ]:
        conn = http.client.HTTPConnection("127.0.0.1", oport, timeout=5)
        conn.request(method, path, body=b"{}" if method != "GET" else None)
        r = conn.getresponse()
        answer = r.read()
        conn.close()
        assert r.status in (404, 501), (method, path, r.status)
        assert b"not for benches" not in answer
    assert (ota / "manifest.json").read_text() == '{"version":"1.0.1"}'


def test_the_gateway_says_it_is_alive_to_the_broker_and_the_portal(
    mosquitto: Broker, portal: RecordingPortal, gateway_factory: Callable[..., Gateway]
) -> None:
    """A dead Pi must be seen: the retained `gateway` Status with its will (docs/protocol.md) and
    the heartbeat PUT /api/v1/gateways/{m} (docs/interfaces.md)."""
    gw = gateway_factory(mosquitto.port, portal_extra(portal.url))
    beats = wait_until(lambda: portal.of("PUT", "/api/v1/gateways/mostar"), 10, what="heartbeat")
    assert set(beats[0]) == {"version", "ts", "lag_s"}
    assert abs(beats[0]["ts"] - time.time()) < 30 and beats[0]["lag_s"] >= 0
    watch = Publisher(mosquitto.host, mosquitto.port)
    watch.subscribe("klupa/v1/mostar/gateway")

    def presence() -> list[tuple[dict[str, Any], bool]]:
        with watch.lock:
            return [(json.loads(p), r) for t, p, r in watch.received if t.endswith("/gateway")]

    got = wait_until(presence, 5, what="the retained gateway Status")
    assert got[0][0]["state"] == "online" and got[0][1] and got[0][0]["v"] == 1
    sock = gw.client.socket()
    assert sock is not None
    sock.close()  # the connection drops without a DISCONNECT: the broker publishes the will
    wait_until(lambda: presence()[-1][0]["state"] == "offline", 10, what="the will")
    wait_until(lambda: presence()[-1][0]["state"] == "online", 15, what="online again")
    gw.stop(flush_s=1)
    wait_until(lambda: presence()[-1][0]["state"] == "offline", 5, what="offline at a clean stop")
    watch.close()
