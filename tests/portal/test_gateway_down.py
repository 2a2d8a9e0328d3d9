"""The portal's "gateway down" alert, through a real SMTP server (aiosmtpd) and a real HTTP
endpoint: one alert when a municipality's gateway has not been heard for 15 minutes, no
duplicate, a recovery when it reports again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from klupa.notify import LOCAL_TZ
from portal import heartbeat
from portal.alerts import GatewayWatch, load_config
from portal.checks import Heartbeat
from portal.cli import main as portal_main
from portal.db import open_database
from testkit.gateway import RecordingPortal
from testkit.mailbox import Inbox, smtp_server


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as served:
        yield served


def alerts_file(tmp_path: Path, smtp_port: int, hook: str) -> Path:
    p = tmp_path / "alerts.toml"
    p.write_text(
        "[alerts]\n"
        'smtp_host = "127.0.0.1"\n'
        f"smtp_port = {smtp_port}\n"
        "smtp_starttls = false\n"
        'mail_from = "portal@example.org"\n'
        'mail_to = ["ops@example.org"]\n'
        f'webhook_url = "{hook}"\n'
        'webhook_token = "portal-token"\n'
        "repeat_h = 6\n"
    )
    return p


def test_a_silent_gateway_is_one_alert_then_a_recovery(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    hook = RecordingPortal()
    try:
        db = open_database(str(tmp_path / "portal.sqlite"))
        watch = GatewayWatch(db, load_config(alerts_file(tmp_path, port, hook.url + "/hook")))
        now = int(time.time())
        heartbeat.record(db, "mostar", Heartbeat("0.1.0", now, 0.0), now=now - 1200)
        heartbeat.record(db, "zepce", Heartbeat("0.1.0", now, 0.0), now=now - 30)
        watch.evaluate(now)
        watch.evaluate(now + 60)  # still silent: no second message
        heartbeat.record(db, "mostar", Heartbeat("0.1.0", now, 0.0), now=now + 100)
        watch.evaluate(now + 120)
        since = datetime.fromtimestamp(now - 1200, LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
        text = f"the mostar gateway has not been heard from since {since}"
        assert inbox.subjects() == [
            f"[klupa mostar] ALERT: {text}",
            f"[klupa mostar] RESOLVED: {text}",
        ]
        hooks = hook.of("POST", "/hook")
        assert [(h["state"], h["municipality"]) for h in hooks] == [
            ("firing", "mostar"),
            ("resolved", "mostar"),
        ]
    finally:
        hook.httpd.shutdown()
        hook.httpd.server_close()


def test_serve_names_a_bad_alerts_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "alerts.toml"
    bad.write_text('[alerts]\nmail_to = ["ops@example.org"]\nquiet_hours = [25, 7]\n')
    rc = portal_main(
        ["serve", "--db", str(tmp_path / "p.sqlite"), "--port", "0", "--alerts", str(bad)]
    )
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "alerts.quiet_hours" in err and "alerts.smtp_host: required with mail_to" in err
