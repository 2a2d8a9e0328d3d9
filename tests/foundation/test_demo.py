"""`klupa demo`, what `make demo` runs, end to end on this machine.

Real Mosquitto, InfluxDB 1.x, the portal, twelve gateways and the twelve virtual benches, as
the demo starts them. The benches' telemetry must reach InfluxDB and their votes the portal;
then a Ctrl-C as a terminal sends it (SIGINT to the demo's whole process group) must stop
every part in order: the gateways flush to the portal before it goes, and nothing is left
running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from klupa.contract import MUNICIPALITY_IDS
from testkit.gateway import wait_until
from testkit.services import need_program


def _running_in(folder: Path) -> list[str]:
    # Command lines of live processes that name the demo's work folder.
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in text:
            found.append(text.strip())
    return found


def _influx_benches(url: str) -> set[str]:
    q = urllib.parse.urlencode(
        {"db": "benches", "q": 'SHOW TAG VALUES FROM "power" WITH KEY = "bench"'}
    )
    try:
        with urllib.request.urlopen(f"{url}/query?{q}", timeout=5) as r:
            body = json.load(r)
    except OSError:
        return set()
    series = body["results"][0].get("series", [])
    return {v[1] for s in series for v in s["values"]}


def _portal(db: Path, sql: str) -> list[tuple[object, ...]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return list(c.execute(sql))
    except sqlite3.Error:
        return []


def test_demo_runs_the_whole_system_and_a_ctrl_c_stops_it_in_order(tmp_path: Path) -> None:
    need_program("mosquitto")
    need_program("influxd")
    work = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "klupa.cli", "demo", "--dir", str(work), "--portal-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        process_group=0,  # as a terminal runs it: its own foreground group
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: any("Ctrl-C stops everything" in x for x in lines), 120, what="start")
        influx = next(m.group(1) for x in lines if (m := re.search(r"InfluxDB 1.x on (\S+)", x)))
        benches = {f"{m}-01" for m in MUNICIPALITY_IDS}

        # The ceilings are for a loaded machine: alone the demo gets here in about 40 s.
        try:
            wait_until(lambda: _influx_benches(influx) >= benches, 300, what="telemetry")
        except TimeoutError as exc:
            missing = sorted(benches - _influx_benches(influx))
            raise AssertionError(
                f"no telemetry in InfluxDB from {missing}:\n{''.join(lines)[-3000:]}"
            ) from exc
        portal_db = work / "portal.sqlite"
        wait_until(
            lambda: len(_portal(portal_db, "SELECT DISTINCT bench FROM votes")) == 12,
            300,
            what="votes from every bench at the portal",
        )
        wait_until(
            lambda: {r[0] for r in _portal(portal_db, "SELECT bench FROM benches")} == benches,
            300,
            what="every bench's state at the portal",
        )

        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C
        assert proc.wait(timeout=120) == 0, "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:  # the test failed before the Ctrl-C: stop it all the same
            proc.terminate()
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()  # its parts get SIGTERM when it ends (die_with_parent)
                proc.wait()
        reader.join(timeout=10)
    assert any("stopping" in x for x in lines)
    for m in MUNICIPALITY_IDS:
        log = (work / f"gateway-{m}.log").read_text()
        assert "0 rows wait in the store for forwarding" in log, log[-1500:]
        assert "not flushed at shutdown" not in log, log[-1500:]
    deadline = time.monotonic() + 10
    while _running_in(work) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running_in(work) == []
