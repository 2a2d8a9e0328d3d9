"""Running the fleet: the Raspberry Pi install and the alert latency.

1. `klupa gateway install` into a fresh root prefix (a deployment made first): seconds and
   bytes it writes; baseline in the same run: the second, idempotent run. Target: < 60 s
   without downloads.
2. A bench that goes silent (its connection simply stops: no will, no goodbye) to the e-mail
   in a real SMTP server (aiosmtpd): seconds, against offline_after_s + 60 s (its windows are
   10 s, so its silence limit is offline_after_s, not 2.5 windows). The gateway runs
   with offline_after_s = OFFLINE_S (default 30) and its alert evaluation every 30 s (the
   default).

    .venv/bin/python benchmarks/ops_install_alerts.py [OFFLINE_S]
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from edge_gateway.config import load
from edge_gateway.service import Gateway
from klupa.cli import main as klupa_main
from klupa.services import Broker, free_port
from provisioning.create import create_deployment
from testkit.benchrig import start_service
from testkit.gateway import Publisher, telemetry, topic_of, wait_until, write_config
from testkit.services import gateway_install_argv, register_bench

OFFLINE_S = int(sys.argv[1]) if len(sys.argv) > 1 else 30


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def install_figures(work: Path) -> None:
    dep = create_deployment(work / "deploy")
    register_bench(dep, "mostar-01")
    root = work / "root"
    argv = gateway_install_argv("install", dep, root, os.environ.get("USER", "root"))
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            assert klupa_main(argv) == 0
        times.append(time.perf_counter() - t0)
    print(f"gateway install, fresh root: {times[0]:.2f} s, {tree_bytes(root):,} bytes written")
    print(
        f"second run (nothing to change, baseline): {times[1]:.2f} s; ratio {times[0] / times[1]:.1f}x"
    )


class Inbox:
    def __init__(self) -> None:
        self.at: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.at.append(time.monotonic())
        return "250 OK"


def alert_figures(work: Path) -> None:
    broker = start_service(Broker, "mosquitto", work / "b")
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    cfg = write_config(
        work / "gw.toml",
        "mostar",
        broker.port,
        work / "s.sqlite",
        f"[health]\noffline_after_s = {OFFLINE_S}\n[alerts]\n"
        f'smtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_starttls = false\n'
        'mail_from = "k@example.org"\nmail_to = ["ops@example.org"]\n',
    )
    gw = Gateway(load(cfg))
    gw.start()
    try:
        wait_until(gw.connected.is_set, 10)
        pub = Publisher(broker.host, broker.port, client_id="mostar-01")
        pub.publish(
            topic_of("mostar-01", "telemetry"),
            telemetry("mostar-01", 1, 1, int(time.time()), period=10, seat={"occ": 5}),
        )
        pub.wait_published()
        wait_until(lambda: gw.health.get("mostar-01").online, 10)
        silent = time.monotonic()  # from here the bench says nothing more
        wait_until(lambda: inbox.at, OFFLINE_S + 120, step=0.2, what="the e-mail")
        latency = inbox.at[0] - silent
        print(
            f"bench silent -> e-mail: {latency:.1f} s (offline_after_s = {OFFLINE_S}; "
            f"target <= {OFFLINE_S + 60} s; ratio to offline_after_s {latency / OFFLINE_S:.2f}x)"
        )
        pub.close()
    finally:
        gw.stop(flush_s=1)
        smtp.stop()
        broker.kill()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="klupa-ops-"))
    try:
        install_figures(work)
        alert_figures(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
