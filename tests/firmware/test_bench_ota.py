"""OTA end to end: `klupa bundle`'s bundle served by a real HTTP server on loopback, the `ota`
command to a virtual bench over a real Mosquitto, the switch at reboot, the trial, `applied`
and `rolled_back`, and tampered bundles refused without touching the running app."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from boards.virtual import FIRMWARE
from boards.virtual.bench import VirtualBench
from boards.virtual.clock import VirtualClock
from edge_gateway.protocol import validate
from provisioning.bundle import build_bundle

KEY_HEX = "5a" * 32


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def command(base: str, name: str, version: str, root: Path) -> dict[str, str]:
    raw = (root / name / "manifest.json").read_bytes()
    return {
        "url": f"{base}/{name}/manifest.json",
        "version": version,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def make_bench(tmp: Path, port: int, kit: dict[str, Any], sources: list[Path]) -> VirtualBench:
    clock = VirtualClock(start=time.time() - 6 * 3600, speed=20.0)
    cfg = kit["bench_config"](port, ota_key=KEY_HEX)
    vb = VirtualBench(tmp / "flash", "bench-v1", cfg, clock, mpy_sources=sources)
    vb.board.set_solar(18.42, 1.105)
    vb.board.set_battery(13.21, -0.412)
    return vb


def ota_events(gw: Any) -> list[tuple[str, str]]:
    """Each `ota` event once: a record not yet receipted at a reboot is sent again from the
    spool with the same (boot, seq), which the protocol allows."""
    seen: set[tuple[int, int]] = set()
    out = []
    for e in gw.of("event"):
        if e["type"] == "ota" and (e["boot"], e["seq"]) not in seen:
            seen.add((e["boot"], e["seq"]))
            out.append((e["state"], e["version"]))
    return out


def acked(gw: Any, cid: str) -> list[dict[str, Any]]:
    return [a for a in gw.of("cmd/ack") if a["id"] == cid]


def test_tampered_bundles_are_refused_and_a_good_one_is_applied(
    mosquitto, bench_runner, firmware_kit, tmp_path, http_root
):
    kit = firmware_kit
    www, base = http_root
    key = bytes.fromhex(KEY_HEX)
    build_bundle(FIRMWARE, www / "good", key, version="1.1.0")
    shutil.copytree(www / "good", www / "badfile")
    f = www / "badfile" / "bench" / "voting.mpy"
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 1]))  # one bit flipped
    shutil.copytree(www / "good", www / "badman")
    m = json.loads((www / "badman" / "manifest.json").read_text())
    m["files"][0]["size"] += 1  # any change the HMAC does not cover
    (www / "badman" / "manifest.json").write_text(json.dumps(m))

    gw = kit["Gateway"](mosquitto.host, mosquitto.port)
    vb = make_bench(tmp_path, mosquitto.port, kit, [])
    bench_runner.start(vb)
    flash = tmp_path / "flash"
    try:
        kit["wait_until"](lambda: vb.app and vb.app.link and vb.app.link.birth_acked, what="up")
        boot = vb.app.boot_no
        gw.command(
            "mostar-01", {"id": "o-1", "op": "ota", "args": command(base, "badfile", "1.1.0", www)}
        )
        a = kit["wait_until"](lambda: acked(gw, "o-1"), timeout=30, what="ack o-1")[0]
        assert a["ok"] is False and "voting.mpy" in a["detail"]
        gw.command(
            "mostar-01", {"id": "o-2", "op": "ota", "args": command(base, "badman", "1.1.0", www)}
        )
        a = kit["wait_until"](lambda: acked(gw, "o-2"), timeout=30, what="ack o-2")[0]
        assert a["ok"] is False and "hmac" in a["detail"]
        # the manifest's hash must match the command's too
        bad_sha = dict(command(base, "good", "1.1.0", www), sha256="0" * 64)
        gw.command("mostar-01", {"id": "o-3", "op": "ota", "args": bad_sha})
        a = kit["wait_until"](lambda: acked(gw, "o-3"), timeout=30, what="ack o-3")[0]
        assert a["ok"] is False and "sha256" in a["detail"]
        assert ota_events(gw) == [("downloading", "1.1.0"), ("failed", "1.1.0")] * 3, (
            ota_events(gw),
            a,
        )
        assert not (flash / "app").exists()
        ota_state = flash / "ota.json"
        assert not ota_state.exists() or json.loads(ota_state.read_text())["state"] != "staged"
        assert vb.app.boot_no == boot  # no reboot

        gw.command(
            "mostar-01", {"id": "o-4", "op": "ota", "args": command(base, "good", "1.1.0", www)}
        )
        a = kit["wait_until"](lambda: acked(gw, "o-4"), timeout=30, what="ack o-4")[0]
        assert a["ok"] is True
        kit["wait_until"](
            lambda: ("applied", "1.1.0") in ota_events(gw), timeout=40, what="applied"
        )
        assert ota_events(gw)[6:] == [
            ("downloading", "1.1.0"),
            ("verified", "1.1.0"),
            ("applied", "1.1.0"),
        ], (ota_events(gw), gw.of("cmd/ack"), vb.ota_boots)
        assert vb.ota_boots[-1] == "switched" and vb.app.boot_no == boot + 1
        boot_ev = [e for e in gw.of("event") if e["type"] == "boot" and e["boot"] == boot + 1]
        assert boot_ev[0]["fw"] == "1.1.0"
        assert [s for s in gw.of("status") if s.get("boot") == boot + 1][0]["fw"] == "1.1.0"
        # the app now running is the bundle in the flash, byte for byte
        for entry in json.loads((www / "good" / "manifest.json").read_text())["files"]:
            data = (flash / "app" / entry["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert str(flash / "app") in (sys_module_file("bench.app") or "")
        # The bundle's ROMFS image is for benches with a ROMFS partition; this one has none.
        assert "rom" in json.loads((www / "good" / "manifest.json").read_text())
        assert not (flash / "app" / "app.rom").exists()
        assert json.loads((flash / "ota.json").read_text())["state"] == ""
        assert json.loads((flash / "ota.json").read_text())["rom"] is None
        assert not (flash / "app.old").exists()
        for e in gw.of("event"):
            if e["type"] == "ota":
                validate("klupa/v1/mostar/mostar-01/event", json.dumps(e).encode(), time.time())
        assert vb.crashes == []
    finally:
        gw.close()
        bench_runner.close()
        from boards.virtual import apploader

        apploader.activate(None, [])  # later tests import the repository's firmware again


def sys_module_file(name: str) -> str | None:
    import sys

    mod = sys.modules.get(name)
    return None if mod is None else getattr(mod, "__file__", None)


def test_a_bundle_whose_app_crashes_at_import_is_rolled_back(
    mosquitto, bench_runner, firmware_kit, tmp_path, http_root
):
    kit = firmware_kit
    www, base = http_root
    broken = tmp_path / "broken-firmware"
    shutil.copytree(FIRMWARE, broken, ignore=shutil.ignore_patterns("__pycache__"))
    app_py = broken / "bench" / "app.py"
    app_py.write_text(app_py.read_text() + '\nraise RuntimeError("broken build")\n')
    build_bundle(broken, www / "broken", bytes.fromhex(KEY_HEX), version="1.2.0")

    gw = kit["Gateway"](mosquitto.host, mosquitto.port)
    vb = make_bench(tmp_path, mosquitto.port, kit, [broken])
    bench_runner.start(vb)
    flash = tmp_path / "flash"
    try:
        kit["wait_until"](lambda: vb.app and vb.app.link and vb.app.link.birth_acked, what="up")
        boot = vb.app.boot_no
        gw.command(
            "mostar-01", {"id": "o-9", "op": "ota", "args": command(base, "broken", "1.2.0", www)}
        )
        assert kit["wait_until"](lambda: acked(gw, "o-9"), timeout=30, what="ack")[0]["ok"]
        kit["wait_until"](
            lambda: ("rolled_back", "1.2.0") in ota_events(gw), timeout=40, what="rolled_back"
        )
        assert ota_events(gw) == [
            ("downloading", "1.2.0"),
            ("verified", "1.2.0"),
            ("rolled_back", "1.2.0"),
        ], (ota_events(gw), gw.of("cmd/ack"), vb.ota_boots, vb.crashes)
        assert any("broken build" in c for c in vb.crashes)
        assert vb.ota_boots[-2:] == ["switched", "rolled_back"]
        assert not (flash / "app").exists()  # the provisioned app runs again
        assert str(FIRMWARE) in (sys_module_file("bench.app") or "")
        boots = [e for e in gw.of("event") if e["type"] == "boot"]
        assert boots[-1]["boot"] > boot and boots[-1]["safe"] is False
        kit["wait_until"](lambda: [t for t in gw.of("telemetry") if t["boot"] > boot], what="tel")
    finally:
        gw.close()
        bench_runner.close()
        from boards.virtual import apploader

        apploader.activate(None, [])
