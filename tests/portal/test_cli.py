"""`klupa portal` commands: tokens, polls, --help, serve's exit on a signal."""

from __future__ import annotations

import datetime
import hashlib
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from portal import store
from portal.cli import main
from portal.db import open_database
from testkit.services import free_port, stop_process, wait_for_http

KLUPA = [sys.executable, "-m", "klupa.cli", "portal"]


def klupa_portal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KLUPA, *args], capture_output=True, text=True, timeout=60)


def test_token_create_prints_the_token_alone_on_the_last_line_and_stores_only_its_hash(
    tmp_path: Path,
) -> None:
    db = tmp_path / "p.sqlite"
    out = klupa_portal("token", "create", "mostar", "--db", str(db))
    assert out.returncode == 0, out.stderr
    token = out.stdout.splitlines()[-1]
    assert token.startswith("klp_") and len(token) > 40 and " " not in token
    admin = klupa_portal("token", "create", "--admin", "--db", str(db))
    assert admin.returncode == 0
    admin_token = admin.stdout.splitlines()[-1]
    assert admin_token != token
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT municipality, admin, token_hash FROM tokens ORDER BY id"
        ).fetchall()
    assert rows == [
        ("mostar", 0, hashlib.sha256(token.encode()).hexdigest()),
        (None, 1, hashlib.sha256(admin_token.encode()).hexdigest()),
    ]
    for path in tmp_path.iterdir():
        assert token.encode() not in path.read_bytes()


def test_token_commands_refuse_bad_input_with_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "p.sqlite")
    for args in (
        ["token", "create", "--db", db],
        ["token", "create", "mostar", "--admin", "--db", db],
        ["token", "create", "Mostar!", "--db", db],
        ["token", "revoke", "99", "--db", db],
        ["token", "revoke", str(2**64), "--db", db],  # no id: beyond any integer column
        ["token", "rotate", str(-(2**63) - 1), "--db", db],
        ["token", "create", "mostar", "--db", str(tmp_path / "missing" / "p.sqlite")],
    ):
        out = klupa_portal(*args)
        assert out.returncode == 2, args
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert out.stderr.startswith("klupa portal: ")
        assert "Traceback" not in out.stderr


def test_revoked_and_rotated_tokens_stop_working_on_the_running_portal(
    portal: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "zavidovici", "--db", portal.db]) == 0
    token = capsys.readouterr().out.splitlines()[-1]
    bench = {"municipality": "zavidovici", "online": True}

    def put(t: str) -> int:
        url = "/api/v1/benches/zavidovici-01"
        return portal.http.put(url, json=bench, headers=portal.auth(t)).status_code

    assert put(token) == 200

    assert main(["token", "list", "--db", portal.db]) == 0
    listing = capsys.readouterr().out
    line = next(row for row in listing.splitlines() if token[:10] in row)
    token_id = line.split()[0]
    assert "zavidovici" in line

    assert main(["token", "rotate", token_id, "--db", portal.db]) == 0
    new_token = capsys.readouterr().out.splitlines()[-1]
    assert put(token) == 401
    assert put(new_token) == 200

    assert main(["token", "list", "--db", portal.db]) == 0
    new_id = next(r for r in capsys.readouterr().out.splitlines() if new_token[:10] in r).split()[0]
    assert main(["token", "revoke", new_id, "--db", portal.db]) == 0
    assert put(new_token) == 401
    assert main(["token", "list", "--all", "--db", portal.db]) == 0
    assert token[:10] in capsys.readouterr().out  # revoked ones are listed with --all


def test_poll_create_from_flags_reaches_the_api(
    portal: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    now = int(time.time())
    code = main(
        [
            "poll",
            "create",
            "--db",
            portal.db,
            "--id",
            "berkovici-cli-poll",
            "--municipality",
            "berkovici",
            "--opens",
            str(now - 60),
            "--closes",
            f"{datetime.date.today() + datetime.timedelta(days=3)}T12:00",  # never a clock change
            "--question",
            "Treba li urediti put do škole?",
            "--question-sr",
            "Треба ли уредити пут?",
            "--option",
            "yes=Da",
            "--option",
            "no=Ne",
            "--label",
            "sr:yes=Да",
            "--label",
            "en:no=No",
            "--results",
            "after_close",
        ]
    )
    assert code == 0, capsys.readouterr().err
    polls = portal.http.get("/api/v1/polls", params={"municipality": "berkovici"}).json()["polls"]
    poll = next(p for p in polls if p["id"] == "berkovici-cli-poll")
    assert poll["question"] == {
        "bs": "Treba li urediti put do škole?",
        "sr": "Треба ли уредити пут?",
    }
    assert poll["options"] == [
        {"id": "yes", "label": {"bs": "Da", "sr": "Да"}},
        {"id": "no", "label": {"bs": "Ne", "en": "No"}},
    ]
    r = portal.http.get("/api/v1/polls/berkovici-cli-poll/results")
    assert r.json()["hidden"] is True
    capsys.readouterr()
    assert (
        main(
            [
                "poll",
                "create",
                "--db",
                portal.db,
                "--id",
                "x",
                "--municipality",
                "ravno",
                "--opens",
                "1",
                "--closes",
                "2",
                "--question",
                "Q?",
                "--option",
                "a=A",
                "--option",
                "b=B",
            ]
        )
        == 2
    )
    assert "id:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        ("2026-03-29T02:30", "does not exist in Sarajevo time"),  # 02:00 -> 03:00 that night
        ("2026-10-25T02:30", "happens twice in Sarajevo time, give its offset: +02:00 or +01:00"),
    ],
)
def test_a_poll_time_the_clock_change_skips_or_repeats_is_refused_by_name(
    tmp_path: Path, when: str, problem: str
) -> None:
    """A local time without a zone is Sarajevo's; one the clock change skips or repeats names
    no single moment, so it is refused by name rather than taken as an hour off."""
    db = str(tmp_path / "p.sqlite")
    poll = ["--municipality", "ravno", "--question", "Q?", "--option", "a=A", "--option", "b=B"]
    window = ["--opens", when, "--closes", "2026-11-01T00:00"]
    out = klupa_portal("poll", "create", "--db", db, "--id", "dst-poll", *poll, *window)
    assert out.returncode == 2, out.stderr
    assert "--opens" in out.stderr and problem in out.stderr, out.stderr
    # With its offset it is one moment, and the poll is made.
    window[1] = f"{when}+01:00"
    out = klupa_portal("poll", "create", "--db", db, "--id", "dst-poll", *poll, *window)
    assert out.returncode == 0, out.stderr
    moment = datetime.datetime.fromisoformat(window[1]).timestamp()
    assert store.get_poll(open_database(db), "dst-poll").opens == moment


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["serve"],
        ["migrate"],
        ["token"],
        ["token", "create"],
        ["token", "list"],
        ["token", "revoke"],
        ["token", "rotate"],
        ["poll"],
        ["poll", "create"],
        ["poll", "list"],
        ["bench"],
        ["bench", "add"],
        ["bench", "import"],
        ["bench", "list"],
    ],
)
def test_every_command_has_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([*args, "--help"])
    assert stop.value.code == 0
    assert "usage: klupa portal" in capsys.readouterr().out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_exits_0_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*KLUPA, "serve", "--db", str(tmp_path / "p.sqlite"), "--port", str(port)],
        stdout=log,
        stderr=log,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, "the portal", timeout=60)
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
    finally:
        stop_process(proc, signal.SIGKILL, timeout=5)
        log.close()
    lines = (tmp_path / "serve.log").read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines)  # JSON-line logs


def test_serve_on_a_busy_port_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = klupa_portal("serve", "--db", str(tmp_path / "p.sqlite"), "--port", str(port))
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"klupa portal: cannot serve on 127.0.0.1:{port}")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("port", ["65536", "-1"])
def test_serve_refuses_a_port_out_of_range_as_a_usage_error(tmp_path: Path, port: str) -> None:
    out = klupa_portal("serve", "--db", str(tmp_path / "p.sqlite"), "--port", port)
    assert out.returncode == 2, out.stderr
    assert f"--port: {port} is not a port: give 0 to 65535" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "OverflowError" not in out.stderr
