"""Helpers for the OTA system scenario (`test_ota_fleet.py`): bundles as an operator makes them,
a broken one, the `ota` command's arguments, and the births benches publish on the broker.

Test files cannot import their siblings (pytest runs with ``--import-mode=importlib``), so
this module is imported as ``hil_tests.ota_helpers``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from boards.virtual import FIRMWARE
from provisioning import signing
from provisioning.bundle import MANIFEST_NAME, build_bundle, sign

KLUPA = [sys.executable, "-m", "klupa.cli"]
CRASH = "broken build: the app raises at import"


def bundle(out: Path, key_file: Path, version: str) -> dict[str, Any]:
    """`klupa bundle` of the repository's firmware with ``version`` (the bumped version the
    benches report once it runs), signed with the OTA signing key in ``key_file``; its
    manifest."""
    env = dict(os.environ, KLUPA_OTA_SIGNING_KEY=str(key_file))
    subprocess.run(
        [*KLUPA, "bundle", "--firmware", str(FIRMWARE), "--out", str(out), "--version", version],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    manifest: dict[str, Any] = json.loads((out / MANIFEST_NAME).read_text())
    return manifest


def broken_bundle(out: Path, key_file: Path, version: str) -> dict[str, Any]:
    """A correctly signed bundle whose app crashes at import: ``bench/app`` ships as source
    (MicroPython imports a ``.py`` as readily as a ``.mpy``) ending in ``raise RuntimeError``."""
    key = signing.load(key_file)
    build_bundle(FIRMWARE, out, key, version=version)
    (out / "bench" / "app.mpy").unlink()
    source = (FIRMWARE / "bench" / "app.py").read_text() + f"\nraise RuntimeError({CRASH!r})\n"
    (out / "bench" / "app.py").write_text(source)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    files = [f for f in manifest["files"] if f["path"] != "bench/app.mpy"]
    data = source.encode()
    files.append(
        {"path": "bench/app.py", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    )
    manifest = sign({"version": version, "files": files}, key)
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def ota_args(base_url: str, folder: Path, version: str) -> list[str]:
    """The `ota` command's arguments for ``klupa gateway cmd`` (key=value): the manifest's
    URL, the version and the SHA-256 of the manifest exactly as served."""
    raw = (folder / MANIFEST_NAME).read_bytes()
    return [
        f"url={base_url}/{folder.name}/{MANIFEST_NAME}",
        f"version={version}",
        f"sha256={hashlib.sha256(raw).hexdigest()}",
    ]


def flash_matches(app_dir: Path, manifest: dict[str, Any]) -> bool:
    """The app folder in a bench's flash holds exactly the bundle's files, byte for byte."""
    if not app_dir.is_dir():
        return False
    have = {p.relative_to(app_dir).as_posix() for p in app_dir.rglob("*") if p.is_file()}
    if have != {f["path"] for f in manifest["files"]}:
        return False
    return all(
        hashlib.sha256((app_dir / f["path"]).read_bytes()).hexdigest() == f["sha256"]
        for f in manifest["files"]
    )


class Births:
    """The Status messages (births, wills) of a municipality's benches, as the broker delivers
    them to a subscriber: (bench, state, boot, fw) in arrival order."""

    def __init__(self, host: str, port: int, municipality: str) -> None:
        self.seen: list[tuple[str, str, int | None, str | None]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="klupa-hil-births")
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(f"klupa/v1/{municipality}/+/status", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:  # a state kept from before this subscriber came, not a birth it saw
            return
        body = json.loads(msg.payload)
        with self.lock:
            self.seen.append((body["bench"], body["state"], body.get("boot"), body.get("fw")))

    def online(self, bench: str) -> list[tuple[int | None, str | None]]:
        """(boot, fw) of each online birth of ``bench``, once each, in order."""
        out: list[tuple[int | None, str | None]] = []
        with self.lock:
            for b, state, boot, fw in self.seen:
                if b == bench and state == "online" and (boot, fw) not in out:
                    out.append((boot, fw))
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
