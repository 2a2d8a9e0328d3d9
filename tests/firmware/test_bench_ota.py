"""OTA end to end: `klupa bundle`'s bundle served by a real HTTP server on loopback, the `ota`
command to a virtual bench over a real Mosquitto, the switch at reboot, the trial, `applied`
and `rolled_back`; tampered bundles, bundles made from another bench's flash and downgrades
refused without touching the running app; the app running on through a download."""

from __future__ import annotations

import functools
import hashlib
import hmac
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
from provisioning import signing
from provisioning.bundle import MANIFEST_NAME, build_bundle, canonical, sign
from provisioning.create import create_deployment
from provisioning.deployment import Deployment, _render_secrets, write_private
from provisioning.steps import Run
from provisioning.steps_app import bench_config

OTHER_BENCH = "ravno-01"  # a bench whose flash an attacker has read


class Quiet(SimpleHTTPRequestHandler):
    gate: threading.Event | None = None  # set: files other than manifests wait for it

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        gate = type(self).gate
        if gate is not None and not self.path.endswith(MANIFEST_NAME):
            gate.wait(30)
        super().do_GET()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    dep = create_deployment(tmp_path_factory.mktemp("ota-deploy") / "deploy")
    for mid in dep.municipalities():
        dep.secrets["wifi"][mid] = f"wifi-{mid}"
    write_private(dep.secrets_path, _render_secrets(dep.secrets))
    dep.reload()
    return dep


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str, type[Quiet]]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (Quiet,), {"gate": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        if handler.gate is not None:
            handler.gate.set()
        server.shutdown()
        server.server_close()


def command(base: str, name: str, version: str, root: Path) -> dict[str, str]:
    raw = (root / name / "manifest.json").read_bytes()
    return {
        "url": f"{base}/{name}/manifest.json",
        "version": version,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def provisioned_config(dep: Deployment, bench: str, port: int, kit: dict[str, Any]) -> dict:
    """The config.json `klupa provision app` writes for ``bench``, its broker and Wi-Fi
    pointed at the test's."""
    made = bench_config(Run(dep=dep, port="virtual"), dep.bench(bench))
    kept = {k: v for k, v in made.items() if k not in ("mqtt", "wifi", "ntp", "boot")}
    return kit["bench_config"](port, **kept)


def make_bench(
    tmp: Path, port: int, kit: dict[str, Any], sources: list[Path], dep: Deployment
) -> VirtualBench:
    clock = VirtualClock(start=time.time() - 6 * 3600, speed=20.0)
    cfg = provisioned_config(dep, "mostar-01", port, kit)
    vb = VirtualBench(tmp / "flash", "bench-v1", cfg, clock, mpy_sources=sources)
    vb.board.set_solar(18.42, 1.105)
    vb.board.set_battery(13.21, -0.412)
    return vb


def ota_events(gw: Any, detail: bool = False) -> list[tuple[str, ...]]:
    """Each `ota` event once: a record not yet receipted at a reboot is sent again from the
    spool with the same (boot, seq), which the protocol allows."""
    seen: set[tuple[int, int]] = set()
    out: list[tuple[str, ...]] = []
    for e in gw.of("event"):
        if e["type"] == "ota" and (e["boot"], e["seq"]) not in seen:
            seen.add((e["boot"], e["seq"]))
            out.append((e["state"], e["version"]) + ((e.get("detail", ""),) if detail else ()))
    return out


def acked(gw: Any, cid: str) -> list[dict[str, Any]]:
    return [a for a in gw.of("cmd/ack") if a["id"] == cid]


def send(gw: Any, kit: dict[str, Any], cid: str, args: dict[str, str]) -> dict[str, Any]:
    gw.command("mostar-01", {"id": cid, "op": "ota", "args": args})
    ack: dict[str, Any] = kit["wait_until"](lambda: acked(gw, cid), timeout=30, what=cid)[0]
    return ack


def forgeries(flash: Path, board_nvs: dict[str, Any], manifest: dict[str, Any]) -> list[dict]:
    """What someone holding a bench's flash can make of a good manifest: signed with every
    hex secret found in its config.json and NVS (as the HMAC key of the old format and as a
    bench-held key would be used), and signed with a key of their own named as the anchor."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (str, bytes)):
            text = v.decode(errors="replace") if isinstance(v, bytes) else v
            try:
                if len(bytes.fromhex(text)) >= 16:
                    found.append(text)
            except ValueError:
                pass

    walk(json.loads((flash / "config.json").read_text()))
    walk(board_nvs)
    assert found, "the flash holds the bench's anchor at least"
    body = {k: v for k, v in manifest.items() if k not in ("sig", "hmac", "anchor")}
    out = []
    for secret in found:
        mac = hmac.new(bytes.fromhex(secret), canonical(body), hashlib.sha256).hexdigest()
        out.append(dict(body, hmac=mac))
        out.append(dict(body, sig=mac))
    own = signing.generate()
    out.append(sign(body, own, anchor=signing.anchor(own)))
    return out


def test_tampered_and_downgraded_bundles_are_refused_and_a_good_one_is_applied(
    mosquitto, bench_runner, firmware_kit, tmp_path, http_root, deployment
):
    kit = firmware_kit
    www, base, _ = http_root
    key = deployment.ota_signing_key
    build_bundle(FIRMWARE, www / "good", key, version="1.1.0")
    build_bundle(FIRMWARE, www / "older", key, version="0.9.0")
    shutil.copytree(www / "good", www / "badfile")
    f = www / "badfile" / "bench" / "voting.mpy"
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 1]))  # one bit flipped
    shutil.copytree(www / "good", www / "badman")
    m = json.loads((www / "badman" / "manifest.json").read_text())
    m["files"][0]["size"] += 1  # any change the signature does not cover
    (www / "badman" / "manifest.json").write_text(json.dumps(m))

    gw = kit["Gateway"](mosquitto.host, mosquitto.port)
    vb = make_bench(tmp_path, mosquitto.port, kit, [], deployment)
    bench_runner.start(vb)
    flash = tmp_path / "flash"
    try:
        kit["wait_until"](lambda: vb.app and vb.app.link and vb.app.link.birth_acked, what="up")
        boot = vb.app.boot_no
        a = send(gw, kit, "o-1", command(base, "badfile", "1.1.0", www))
        assert a["ok"] is False and "voting.mpy" in a["detail"]
        a = send(gw, kit, "o-2", command(base, "badman", "1.1.0", www))
        assert a["ok"] is False and "signature" in a["detail"]
        # the manifest's hash must match the command's too
        a = send(gw, kit, "o-3", dict(command(base, "good", "1.1.0", www), sha256="0" * 64))
        assert a["ok"] is False and "sha256" in a["detail"]
        events = ota_events(gw, detail=True)
        assert [e[:2] for e in events] == [("downloading", "1.1.0"), ("failed", "1.1.0")] * 3
        assert ["voting.mpy" in events[1][2], "signature" in events[3][2]] == [True, True]
        assert not (flash / "app").exists()
        ota_state = flash / "ota.json"
        assert not ota_state.exists() or json.loads(ota_state.read_text())["state"] != "staged"
        assert vb.app.boot_no == boot  # no reboot

        a = send(gw, kit, "o-4", command(base, "good", "1.1.0", www))
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

        # A correctly signed bundle older than the committed one: refused (anti-rollback).
        a = send(gw, kit, "o-5", command(base, "older", "0.9.0", www))
        assert a["ok"] is False and "older than 1.1.0" in a["detail"], a
        assert ota_events(gw, detail=True)[-1] == ("failed", "0.9.0", a["detail"])
        assert vb.app.boot_no == boot + 1 and vb.app.fw == "1.1.0"
        for e in gw.of("event"):
            if e["type"] == "ota":
                validate("klupa/v1/mostar/mostar-01/event", json.dumps(e).encode(), time.time())
        assert vb.crashes == []
    finally:
        gw.close()
        bench_runner.close()
        from boards.virtual import apploader

        apploader.activate(None, [])  # later tests import the repository's firmware again


def test_bundles_made_from_another_benchs_flash_are_refused(
    mosquitto, bench_runner, firmware_kit, tmp_path, http_root, deployment
):
    kit = firmware_kit
    www, base, _ = http_root
    build_bundle(FIRMWARE, www / "good", deployment.ota_signing_key, version="1.1.0")
    good = json.loads((www / "good" / MANIFEST_NAME).read_text())
    # The other bench's flash as provisioning left it, and its NVS after a commit.
    other = tmp_path / "other-flash"
    other.mkdir()
    cfg = provisioned_config(deployment, OTHER_BENCH, mosquitto.port, kit)
    (other / "config.json").write_text(json.dumps(cfg))
    other_nvs = {"klupa_ota": {"floor": b"1.0.0"}}
    made = forgeries(other, other_nvs, good)
    for i, m in enumerate(made):
        shutil.copytree(www / "good", www / f"forged{i}")
        (www / f"forged{i}" / MANIFEST_NAME).write_text(json.dumps(m))

    gw = kit["Gateway"](mosquitto.host, mosquitto.port)
    vb = make_bench(tmp_path, mosquitto.port, kit, [], deployment)
    bench_runner.start(vb)
    try:
        kit["wait_until"](lambda: vb.app and vb.app.link and vb.app.link.birth_acked, what="up")
        boot = vb.app.boot_no
        for i in range(len(made)):
            a = send(gw, kit, f"f-{i}", command(base, f"forged{i}", "1.1.0", www))
            assert a["ok"] is False and "signature" in a["detail"], (i, a)
        events = ota_events(gw, detail=True)
        assert [e[:2] for e in events] == [("downloading", "1.1.0"), ("failed", "1.1.0")] * len(
            made
        )
        assert all("signature" in e[2] for e in events[1::2]), events
        assert not (tmp_path / "flash" / "app").exists() and vb.app.boot_no == boot
        assert vb.board.nvs.get("klupa_ota", {}).get("anchor") is None  # no anchor taken over
    finally:
        gw.close()
        bench_runner.close()


def test_the_bench_keeps_publishing_and_answering_during_a_download(
    mosquitto, bench_runner, firmware_kit, tmp_path, http_root, deployment
):
    # The bundle's files are held back by the server until the bench has shown, through the
    # broker, that its link runs on: the `downloading` event arrived and a `ping` was acked.
    kit = firmware_kit
    www, base, handler = http_root
    build_bundle(FIRMWARE, www / "good", deployment.ota_signing_key, version="1.1.0")
    handler.gate = threading.Event()
    gw = kit["Gateway"](mosquitto.host, mosquitto.port)
    vb = make_bench(tmp_path, mosquitto.port, kit, [], deployment)
    bench_runner.start(vb)
    try:
        kit["wait_until"](lambda: vb.app and vb.app.link and vb.app.link.birth_acked, what="up")
        gw.command(
            "mostar-01", {"id": "o-1", "op": "ota", "args": command(base, "good", "1.1.0", www)}
        )
        kit["wait_until"](
            lambda: ("downloading", "1.1.0") in ota_events(gw), timeout=15, what="downloading"
        )
        # The app's own loops run on: the pads and display, the sampler, the watchdog's feeder.
        app = vb.app
        seen = dict(app.checkins)
        fed = vb.board.wdt_fed_ms
        kit["wait_until"](
            lambda: (
                all(app.checkins[k] != seen[k] for k in ("front", "sampler"))
                and vb.board.wdt_fed_ms > fed
            ),
            timeout=15,
            what="front, sampler and the watchdog's feeder during the download",
        )
        gw.command("mostar-01", {"id": "p-1", "op": "ping"})
        assert kit["wait_until"](lambda: acked(gw, "p-1"), timeout=15, what="ping")[0]["ok"]
        tel = len(gw.of("telemetry"))
        kit["wait_until"](lambda: len(gw.of("telemetry")) > tel, timeout=15, what="telemetry")
        a = send(gw, kit, "o-2", command(base, "good", "1.1.0", www))  # one update at a time
        assert a["ok"] is False and "already running" in a["detail"], a
        assert not acked(gw, "o-1")  # still downloading
        handler.gate.set()
        assert kit["wait_until"](lambda: acked(gw, "o-1"), timeout=30, what="ack o-1")[0]["ok"]
        kit["wait_until"](
            lambda: ("applied", "1.1.0") in ota_events(gw), timeout=40, what="applied"
        )
        assert vb.crashes == []
    finally:
        handler.gate.set()
        gw.close()
        bench_runner.close()
        from boards.virtual import apploader

        apploader.activate(None, [])


def test_a_rotation_bundle_hands_the_bench_over_to_the_next_key(
    mosquitto, bench_runner, firmware_kit, tmp_path, http_root, deployment
):
    kit = firmware_kit
    www, base, _ = http_root
    current = deployment.ota_signing_key
    nxt = signing.generate()
    build_bundle(FIRMWARE, www / "rotate", current, version="1.1.0", anchor=signing.anchor(nxt))
    build_bundle(FIRMWARE, www / "old-key", current, version="1.2.0")
    build_bundle(FIRMWARE, www / "new-key", nxt, version="1.2.0")
    gw = kit["Gateway"](mosquitto.host, mosquitto.port)
    vb = make_bench(tmp_path, mosquitto.port, kit, [], deployment)
    bench_runner.start(vb)
    try:
        kit["wait_until"](lambda: vb.app and vb.app.link and vb.app.link.birth_acked, what="up")
        # Before the rotation, the next key's bundle is refused like any other stranger's.
        assert send(gw, kit, "r-0", command(base, "new-key", "1.2.0", www))["ok"] is False
        assert send(gw, kit, "r-1", command(base, "rotate", "1.1.0", www))["ok"] is True
        kit["wait_until"](
            lambda: ("applied", "1.1.0") in ota_events(gw), timeout=40, what="applied"
        )
        nvs = vb.board.nvs["klupa_ota"]
        assert nvs["anchor"].decode() == signing.anchor(nxt) and nvs["floor"] == b"1.1.0"
        a = send(gw, kit, "r-2", command(base, "old-key", "1.2.0", www))
        assert a["ok"] is False and "signature" in a["detail"], a
        assert send(gw, kit, "r-3", command(base, "new-key", "1.2.0", www))["ok"] is True
        assert vb.crashes == []
    finally:
        gw.close()
        bench_runner.close()
        from boards.virtual import apploader

        apploader.activate(None, [])


def sys_module_file(name: str) -> str | None:
    import sys

    mod = sys.modules.get(name)
    return None if mod is None else getattr(mod, "__file__", None)


def test_a_bundle_whose_app_crashes_at_import_is_rolled_back(
    mosquitto, bench_runner, firmware_kit, tmp_path, http_root, deployment
):
    kit = firmware_kit
    www, base, _ = http_root
    broken = tmp_path / "broken-firmware"
    shutil.copytree(FIRMWARE, broken, ignore=shutil.ignore_patterns("__pycache__"))
    app_py = broken / "bench" / "app.py"
    app_py.write_text(app_py.read_text() + '\nraise RuntimeError("broken build")\n')
    build_bundle(broken, www / "broken", deployment.ota_signing_key, version="1.2.0")

    gw = kit["Gateway"](mosquitto.host, mosquitto.port)
    vb = make_bench(tmp_path, mosquitto.port, kit, [broken], deployment)
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
