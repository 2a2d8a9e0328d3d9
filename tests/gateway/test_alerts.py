"""Alerts through a real SMTP server (aiosmtpd) and a real HTTP endpoint, on a scripted day.

The gateway, its Mosquitto and the bench messages are real; the alert engine's clock is the
test's (`Alerts.evaluate(now)`), so a day's repeats and quiet hours run in seconds.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from edge_gateway.alerts import Channels, Notice, quiet
from edge_gateway.config import ConfigError, load
from edge_gateway.service import Gateway
from edge_gateway.store import LOCAL_TZ
from klupa.services import Broker, make_ca
from testkit.gateway import (
    Publisher,
    RecordingPortal,
    Redirector,
    telemetry,
    topic_of,
    wait_until,
    write_config,
)
from testkit.mailbox import Inbox, smtp_server

B = "mostar-01"
OFFLINE = b'{"v":1,"bench":"mostar-01","state":"offline"}'


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as served:
        yield served


def alerts_extra(smtp_port: int, hook: str, more: str = "") -> str:
    return (
        "[alerts]\n"
        "evaluate_s = 3600\n"  # the test evaluates, on its own clock
        "repeat_h = 6\n"
        "quiet_hours = [22, 7]\n"
        'smtp_host = "127.0.0.1"\n'
        f"smtp_port = {smtp_port}\n"
        "smtp_starttls = false\n"
        'mail_from = "klupa@example.org"\n'
        'mail_to = ["ops@example.org"]\n'
        f'webhook_url = "{hook}"\n'
        'webhook_token = "portal-token"\n' + more
    )


@dataclass
class Alerting:
    """A Mostar gateway's alerts world: its broker, the SMTP inbox and the portal's /hook."""

    broker: Broker
    factory: Callable[..., Gateway]
    inbox: Inbox
    smtp_port: int
    portal: RecordingPortal

    def gateway(self, more: str = "", quiet_hours: bool = True) -> Gateway:
        """A started gateway alerting by mail and webhook; ``more`` is TOML put after it."""
        extra = alerts_extra(self.smtp_port, self.portal.url + "/hook", more)
        if not quiet_hours:
            extra = extra.replace("quiet_hours = [22, 7]\n", "")
        return self.factory(self.broker.port, extra)


@pytest.fixture
def alerting(
    mosquitto: Broker,
    gateway_factory: Callable[..., Gateway],
    smtp: tuple[Inbox, int],
    portal: RecordingPortal,
) -> Alerting:
    return Alerting(mosquitto, gateway_factory, *smtp, portal)


def local(day: datetime, hour: int, minute: int = 0) -> float:
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def bench_online(broker: Broker, gw: Gateway) -> Publisher:
    """mostar-01 connected, its last will saying offline, and online once the gateway has it so."""
    p = Publisher(broker.host, broker.port, client_id=B, will=(topic_of(B, "status"), OFFLINE))
    p.publish(topic_of(B, "status"), {"v": 1, "bench": B, "state": "online"}, retain=True)
    p.wait_published()
    wait_until(lambda: gw.health.get(B).online, 5, what="online")
    return p


def drop(p: Publisher, gw: Gateway) -> None:
    """The bench's link cut without a goodbye: its will is published; until the gateway sees it."""
    p.drop()
    wait_until(lambda: not gw.health.get(B).online, 5, what="offline")


def test_a_scripted_day_sends_each_alert_once_with_repeats_recoveries_and_quiet_hours(
    alerting: Alerting,
) -> None:
    inbox, gw = alerting.inbox, alerting.gateway()
    alerts = gw.alerts
    day = datetime.now(LOCAL_TZ) - timedelta(days=1)
    now = int(time.time())

    def power(p: Publisher, seq: int, state: str, soc: float) -> None:
        msg = telemetry(B, 2, seq, now - 100 + seq, power=state)
        msg["batt"]["soc"] = soc
        p.publish(topic_of(B, "telemetry"), msg)
        p.wait_published()
        wait_until(lambda: gw.health.get(B).power == state, 5, what=state)

    pub = bench_online(alerting.broker, gw)
    power(pub, 1, "normal", 80.0)
    alerts.evaluate(local(day, 9))
    assert inbox.subjects() == []

    # an outage: one alert, no duplicate, a repeat after 6 hours, a recovery
    drop(pub, gw)
    alerts.evaluate(local(day, 10))
    alerts.evaluate(local(day, 10, 5))
    alerts.evaluate(local(day, 15, 59))
    alerts.evaluate(local(day, 16, 1))
    pub = bench_online(alerting.broker, gw)
    alerts.evaluate(local(day, 16, 30))
    # a critical battery and its recovery
    power(pub, 2, "critical", 9.5)
    alerts.evaluate(local(day, 17))
    power(pub, 3, "normal", 46.0)
    alerts.evaluate(local(day, 18))
    # quiet hours: an outage that comes and goes inside them is never sent
    drop(pub, gw)
    alerts.evaluate(local(day, 23))
    pub = bench_online(alerting.broker, gw)
    alerts.evaluate(local(day, 23, 30))
    # one that holds past their end fires when they end
    drop(pub, gw)
    alerts.evaluate(local(day, 23, 45))
    alerts.evaluate(local(day + timedelta(days=1), 6, 59))
    alerts.evaluate(local(day + timedelta(days=1), 7, 1))

    m = "[klupa mostar]"
    expected = [
        f"{m} ALERT: mostar-01 is offline",
        f"{m} STILL: mostar-01 is offline",
        f"{m} RESOLVED: mostar-01 is offline",
        f"{m} ALERT: mostar-01: battery critical (SoC 10 %)",
        f"{m} RESOLVED: mostar-01: battery critical (SoC 10 %)",
        f"{m} ALERT: mostar-01 is offline",
    ]
    assert inbox.subjects() == expected
    hooks = alerting.portal.of("POST", "/hook")
    assert [h["text"] for h in hooks] == expected
    assert [h["state"] for h in hooks] == [
        "firing",
        "repeat",
        "resolved",
        "firing",
        "resolved",
        "firing",
    ]
    assert all(h["municipality"] == "mostar" and h["bench"] == B for h in hooks)
    body = inbox.messages[2].get_payload()
    assert "lasted: 6 h 30 min" in str(body)


def test_what_was_sent_survives_a_restart(
    alerting: Alerting,
) -> None:
    inbox, gw = alerting.inbox, alerting.gateway()
    drop(bench_online(alerting.broker, gw), gw)
    day = datetime.now(LOCAL_TZ)
    gw.alerts.evaluate(local(day, 12))
    assert len(inbox.messages) == 1
    gw.stop(flush_s=1)
    gw2 = alerting.gateway()
    gw2.alerts.evaluate(local(day, 13))  # the same outage, within repeat_h: not again
    assert len(inbox.messages) == 1


def test_mail_goes_over_starttls_with_login(tmp_path: Path) -> None:
    certs = make_ca(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["cert"], certs["key"])

    def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"klupa",
            b"smtp-secret",
        )
        return AuthResult(success=ok)

    with smtp_server(
        tls_context=ctx,
        require_starttls=True,
        authenticator=auth,
        auth_require_tls=True,
        auth_required=True,
    ) as (inbox, port):
        cfg_path = write_config(
            tmp_path / "gw.toml",
            "mostar",
            1883,
            tmp_path / "s.sqlite",
            "[alerts]\n"
            'smtp_host = "127.0.0.1"\n'
            f"smtp_port = {port}\n"
            f'smtp_ca_file = "{certs["ca"]}"\n'
            'smtp_user = "klupa"\n'
            'smtp_password = "smtp-secret"\n'
            'mail_from = "klupa@example.org"\n'
            'mail_to = ["ops@example.org"]\n',
        )
        cfg = load(cfg_path)
        assert cfg.alerts is not None and "smtp-secret" in cfg.secrets()
        n = Notice("firing", "disk", "the gateway's disk is nearly full", "", 0, 60, "mostar")
        assert Channels(cfg.alerts).send(n)
        assert inbox.subjects() == [n.subject()]
        cfg.alerts.smtp_user = ""  # without the login the server takes nothing
        with pytest.raises(smtplib.SMTPException):
            Channels(cfg.alerts).mail(n)
        assert not Channels(cfg.alerts).send(n) and len(inbox.messages) == 1


def test_a_webhook_url_that_redirects_gets_neither_the_token_nor_the_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """urllib follows a redirect with the request's headers, and a 302 turns the POST into a GET:
    the webhook's token went to wherever the hook's address pointed. Now the 3xx is a failed
    send, named in the log, and retried like any other."""
    elsewhere = RecordingPortal()  # another host
    front = Redirector(elsewhere.url.replace("127.0.0.1", "localhost"))
    try:
        cfg = load(
            write_config(
                tmp_path / "gw.toml",
                "mostar",
                1883,
                tmp_path / "s.sqlite",
                f'[alerts]\nwebhook_url = "{front.url}/hook"\nwebhook_token = "hook-token"\n',
            )
        )
        assert cfg.alerts is not None
        n = Notice("firing", "disk", "the gateway's disk is nearly full", "", 0, 60, "mostar")
        assert not Channels(cfg.alerts).send(n)
        assert front.hits == 1 and elsewhere.requests == []
        assert "could not send an alert by webhook: HTTP Error 302" in caplog.text
    finally:
        for server in (front, elsewhere):
            server.httpd.shutdown()
            server.httpd.server_close()


def test_alerts_config_names_each_problem(tmp_path: Path) -> None:
    def problems(extra: str) -> list[str]:
        with pytest.raises(ConfigError) as info:
            load(write_config(tmp_path / "g.toml", "mostar", 1883, tmp_path / "s.sqlite", extra))
        return info.value.problems

    assert problems("[alerts]\n") == [
        "alerts.mail_to: give mail_to (with smtp_host) or webhook_url: alerts need a channel"
    ]
    assert problems('[alerts]\nmail_to = ["a@b.c"]\nquiet_hours = [22]\n') == [
        "alerts.quiet_hours: must be [start, end], local hours 0..23, e.g. [22, 7]",
        "alerts.smtp_host: required with mail_to",
        "alerts.mail_from: required with mail_to: the sender's address",
    ]
    assert problems(
        '[alerts]\nwebhook_url = "http://hooks.example.org/x"\nwebhook_token = "t"\n'
    ) == [
        "alerts.webhook_url: plain http:// to hooks.example.org would send the token "
        "unencrypted: use https://, or set alerts.allow_plain_http = true on a network you trust"
    ]


def test_quiet_hours_wrap_past_midnight() -> None:
    day = datetime(2026, 12, 7, tzinfo=LOCAL_TZ)
    assert quiet((22, 7), local(day, 23)) and quiet((22, 7), local(day, 3))
    assert not quiet((22, 7), local(day, 7)) and not quiet((22, 7), local(day, 21, 59))
    assert quiet((1, 5), local(day, 2)) and not quiet((1, 5), local(day, 5))
    assert not quiet(None, local(day, 3))


def test_no_bench_alert_while_the_portal_has_had_no_heartbeat(
    alerting: Alerting,
) -> None:
    """The portal says "gateway down" after 15 minutes without a heartbeat; meanwhile the
    gateway's bench alerts wait, and go out once its heartbeats get through again."""
    inbox, portal = alerting.inbox, alerting.portal
    gw = alerting.gateway(
        f'[portal]\nurl = "{portal.url}"\ntoken = "portal-token"\npoll_sync_s = 60\n'
    )
    assert gw.poll_sync is not None
    drop(bench_online(alerting.broker, gw), gw)
    day = datetime.now(LOCAL_TZ)
    gw.poll_sync.beat_ok_at = time.time() - 1000  # cut off from the portal for 16 minutes
    gw.alerts.evaluate(local(day, 12))
    assert inbox.subjects() == []
    gw.poll_sync.beat_ok_at = time.time()
    gw.alerts.evaluate(local(day, 12, 1))
    assert inbox.subjects() == ["[klupa mostar] ALERT: mostar-01 is offline"]


def test_each_rule_fires_from_what_the_benches_send(
    alerting: Alerting,
) -> None:
    inbox = alerting.inbox
    gw = alerting.gateway("disk_free_mb = 10000000\nwet_after_s = 300\n", quiet_hours=False)
    pub = Publisher(alerting.broker.host, alerting.broker.port)
    now = int(time.time())
    ev = {"v": 1, "bench": B, "boot": 4}
    pub.publish(
        topic_of(B, "event"),
        {**ev, "seq": 1, "ts": now, "type": "boot", "reset": "wdt", "fw": "1.1", "safe": True},
    )
    pub.publish(
        topic_of(B, "event"),
        {**ev, "seq": 2, "ts": now, "type": "tamper", "kind": "port_overcurrent", "detail": "p3"},
    )
    pub.publish(
        topic_of(B, "event"),
        {**ev, "seq": 3, "ts": now, "type": "fault", "code": "touch_wet", "detail": "8 of 8"},
    )
    pub.wait_published()
    wait_until(lambda: gw.counts["accepted"] == 3, 5)
    gw.clock_ok.clear()  # as while waiting for NTP
    gw.alerts.evaluate(now + 600)  # the pads stay wet past wet_after_s
    got = sorted(s.split(": ", 1)[1] for s in inbox.subjects())
    assert len(got) == 5, got
    assert got[:4] == [
        "mostar-01 is in safe mode",
        "mostar-01: tamper (port_overcurrent)",
        "mostar-01: touch pads wet for 10 min",
        "the gateway's clock is not synchronised: taking nothing",
    ]
    assert got[4].startswith("the gateway's disk is nearly full (") and " MB free)" in got[4]
    # a press counted again: dry; the tamper hold has passed: both recover
    t = telemetry(B, 4, 4, int(time.time()))
    pub.publish(topic_of(B, "telemetry"), t)
    pub.wait_published()
    wait_until(lambda: gw.health.get(B).wet_since is None, 5, what="dry")
    gw.clock_ok.set()
    gw.alerts.evaluate(now + 3700)
    resolved = sorted(s.split(": ", 1)[1] for s in inbox.subjects() if "RESOLVED" in s)
    assert resolved == [
        "mostar-01: tamper (port_overcurrent)",
        "mostar-01: touch pads wet for 10 min",
        "the gateway's clock is not synchronised: taking nothing",
    ]
    pub.close()
