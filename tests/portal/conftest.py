"""The real portal for tests: `klupa portal serve` as a child process on a free port, SQLite in a
temp dir, with an admin token and per-municipality tokens created through portal.tokens, and
benches `{m}-01` to `{m}-09` of every municipality in its bench registry (`{m}-01` with the
largest hourly vote cap, for the tests that send many votes at once; the others the default)."""

from __future__ import annotations

import datetime
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from klupa.contract import MUNICIPALITY_IDS
from portal.db import open_database
from portal.registry import VOTE_CAP_RANGE, add_bench, import_benches
from portal.store import LOCAL
from portal.tokens import create_token
from testkit.polls import poll_options, protocol_poll
from testkit.services import (
    free_port,
    need_program,
    serve_portal,
    stop_process,
    wait_for_port,
)

_ids = itertools.count(1)


class RunningPortal:
    def __init__(self, workdir: Path, db: str | None = None) -> None:
        self.workdir = workdir
        self.db = db or str(workdir / "portal.sqlite")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.engine = open_database(self.db)
        self.admin = create_token(self.engine, admin=True)
        import_benches(
            self.engine, [(f"{m}-{n:02d}", m) for m in MUNICIPALITY_IDS for n in range(1, 10)]
        )
        for m in MUNICIPALITY_IDS:  # the load tests' benches: a busy square's cap
            add_bench(self.engine, f"{m}-01", m, vote_cap=VOTE_CAP_RANGE[1])
        self._tokens: dict[str, str] = {}
        self.log = workdir / "portal.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> None:
        self.proc = serve_portal(self.db, self.port, self.log)

    def stop(self) -> int | None:
        self.http.close()
        if self.proc is None:
            return None
        stop_process(self.proc, signal.SIGTERM, timeout=15)
        return self.proc.returncode

    def token(self, municipality: str) -> str:
        """A gateway token for `municipality` (made once per municipality)."""
        if municipality not in self._tokens:
            self._tokens[municipality] = create_token(self.engine, municipality)
        return self._tokens[municipality]

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def make_poll(
        self,
        municipalities: list[str],
        opens: int | None = None,
        closes: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Create a poll through the admin API; a fresh id every call. The park-lights question
        in Bosnian, Serbian and English, yes or no, unless ``extra`` gives others; ``extra`` also
        sets the id or adds keys (``results``)."""
        now = int(time.time())
        park_lights = protocol_poll(
            f"test-poll-{next(_ids)}-{now % 100000}",
            now - 3600 if opens is None else opens,
            now + 86400 if closes is None else closes,
            question={
                "bs": "Da li želite više rasvjete u parku?",
                "sr": "Да ли желите више расвјете у парку?",
                "en": "Do you want more lighting in the park?",
            },
            options=poll_options(
                ("yes", {"bs": "Da", "en": "Yes"}), ("no", {"bs": "Ne", "en": "No"})
            ),
            municipalities=municipalities,
        )
        body = {**park_lights, **extra}
        r = self.http.post("/api/v1/polls", json=body, headers=self.auth(self.admin))
        assert r.status_code == 201, r.text
        return body


def vote(
    poll: dict[str, Any],
    bench: str,
    seq: int,
    choice: str = "yes",
    ts: int | None = None,
    municipality: str | None = None,
    boot: int | None = None,
) -> dict[str, Any]:
    if boot is None:  # one boot per poll, so tests sharing the server never share vote ids
        boot = zlib.crc32(poll["id"].encode()) % 1_000_000 + 1
    return {
        "id": f"{bench}/{boot}/{seq}",
        "municipality": municipality or bench.rsplit("-", 1)[0],
        "bench": bench,
        "poll": poll["id"],
        "choice": choice,
        "ts": int(time.time()) - 60 if ts is None else ts,
    }


@contextmanager
def serving(workdir: Path, db: str | None = None) -> Iterator[RunningPortal]:
    """A portal served from ``workdir`` (on SQLite there unless ``db``), stopped at the end."""
    running = RunningPortal(workdir, db)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def today_for_a_minute() -> int:
    """Now, once the local day has a minute left: a test that stamps records with now and then
    reads a page (which takes its own today, a few seconds later) has both on one day."""
    now = time.time()
    today = datetime.datetime.fromtimestamp(now, LOCAL).date()
    midnight = datetime.datetime.combine(
        today + datetime.timedelta(days=1), datetime.time(), LOCAL
    ).timestamp()
    if midnight - now < 60:
        time.sleep(midnight - now)
    return int(time.time())


def bench_day(bench: str, date: str, /, **values: Any) -> dict[str, Any]:
    """A bench's day as PUT /api/v1/bench-days takes it: each figure 1 and 50 % up unless given."""
    day = {
        "municipality": bench.rsplit("-", 1)[0],
        "bench": bench,
        "date": date,
        "solar_wh": 1.0,
        "charge_wh": 1.0,
        "sessions": 1,
        "seat_occ_s": 1,
        "touches": 1,
        "votes": 1,
        "uptime_pct": 50.0,
    }
    return {**day, **values}


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPortal]:
    with serving(tmp_path_factory.mktemp("portal")) as running:
        yield running


@pytest.fixture
def make_vote() -> Callable[..., dict[str, Any]]:
    return vote


class Postgres:
    """A throwaway PostgreSQL server on a free loopback port (run as `postgres` when root)."""

    def __init__(self) -> None:
        self.initdb = need_program("initdb", "/usr/lib/postgresql/15/bin/initdb")
        self.postgres = need_program("postgres", "/usr/lib/postgresql/15/bin/postgres")
        self.as_user: dict[str, Any] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="klupa-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("PostgreSQL refuses to run as root and there is no `postgres` user")
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
            # The server itself runs as `postgres`, so signals reach it directly.
            self.as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self.port = free_port()
        self.url = f"postgresql://klupa@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        data = self.workdir / "data"
        subprocess.run(
            [
                self.initdb,
                "-D",
                str(data),
                "-U",
                "klupa",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=self.workdir,
            **self.as_user,
        )
        log = (self.workdir / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.postgres,
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.workdir}",
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=log,
            cwd=self.workdir,
            **self.as_user,
        )
        log.close()
        wait_for_port(self.port, self.proc, "postgres", timeout=60)
        self._wait_for_connections(timeout=60)

    def _wait_for_connections(self, timeout: float) -> None:
        """Until the server takes a connection: it listens before it has finished starting
        ("the database system is starting up"), which a loaded machine makes long enough for
        the portal's first connection to fail."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user=klupa dbname=postgres"
                ).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, timeout=20)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPortal]:
    """The portal served on a real PostgreSQL (needs the psycopg driver)."""
    pytest.importorskip("psycopg", reason="the psycopg driver is not installed (psycopg[binary])")
    server = Postgres()
    try:
        server.start()
        with serving(tmp_path_factory.mktemp("portal-pg"), db=server.url) as running:
            try:
                yield running
            finally:
                running.engine.dispose()
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_portal(request: pytest.FixtureRequest) -> RunningPortal:
    """The running portal on SQLite, then on PostgreSQL: a trust rule holds on both."""
    name = "portal" if request.param == "sqlite" else "postgres_portal"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
