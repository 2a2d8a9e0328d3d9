"""An app update and a rollback on a bench reached only through its serial port and its broker
(fixture `serial_bench`): the `ota` Command on the broker, the bundles (`klupa bundle`, signed
with the key the bench trusts) served over HTTP from this machine, the `ota` events and the
boots read from the gateway's store, and the broken app's crash seen on the serial console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_gateway.serve import Listen, serve_ota
from hil_tests.ota_helpers import CRASH, broken_bundle, bundle, ota_args
from klupa.services import free_port


def bump(version: str, minor: int) -> str:
    """A version above the bench's (a bench refuses one below the highest it committed)."""
    major, mid, _ = (int(x) for x in version.split(".")[:3])
    return f"{major}.{mid + minor}.0"


def test_serial_ota_and_rollback(serial_bench: Any, tmp_path: Path) -> None:
    sb, system = serial_bench, serial_bench.system
    if sb.virtual is None and not system.ota_key_file.exists():
        pytest.skip(
            "a real bench's update needs the key it trusts: --ota-key (ota/signing-key.pem)"
        )

    def ota(bench_boot: int) -> list[tuple[str, str]]:
        return [
            (r.body["state"], r.body["version"])
            for r in system.records("event", sb.bench)
            if r.body["type"] == "ota" and r.boot >= bench_boot
        ]

    system.start_gateway()
    first = sb.fresh_boot()
    new, broken = bump(first.body["fw"], 1), bump(first.body["fw"], 2)
    www = tmp_path / "www"
    bundle(www / new, system.ota_key_file, new)
    broken_bundle(www / broken, system.ota_key_file, broken)
    host = "127.0.0.1" if sb.virtual is not None else system.broker.host  # the bench reaches it
    server = serve_ota(str(www), Listen(free_port()))
    base = f"http://{host}:{server.port}"
    try:
        args = dict(a.split("=", 1) for a in ota_args(base, www / new, new))
        ack = sb.command("ota", args).body
        assert (ack["ok"], ack["detail"]) == (True, ""), ack
        trial = sb.next_boot(first.boot)
        assert trial.body["fw"] == new, trial
        sb.wait(lambda: ("applied", new) in ota(trial.boot), 400, f"{new} applied")
        assert ota(first.boot) == [("downloading", new), ("verified", new), ("applied", new)]

        # A broken app (crashes at import): the bench rolls it back by itself.
        args = dict(a.split("=", 1) for a in ota_args(base, www / broken, broken))
        assert sb.command("ota", args).body["ok"]
        sb.wait(lambda: ("rolled_back", broken) in ota(trial.boot), 400, f"{broken} rolled back")
        back = sb.next_boot(trial.boot)
        assert back.body["fw"] == new, back
        sb.wait_windows(back.boot, 2)
    finally:
        server.stop()
    assert ota(trial.boot)[1:] == [
        ("downloading", broken),
        ("verified", broken),
        ("rolled_back", broken),
    ]
    # The crash at import, as the bench printed it on its console.
    assert f"RuntimeError: {CRASH}" in sb.console.text()
