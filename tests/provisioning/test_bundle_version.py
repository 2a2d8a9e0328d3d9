"""The bundle's version is the one the firmware reports (its `FW` in bench/app.py)."""

from __future__ import annotations

import re
from pathlib import Path

from provisioning import signing
from provisioning.bundle import build_bundle

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def test_bundle_of_the_firmware_carries_the_version_the_bench_reports(tmp_path: Path) -> None:
    # What the bench puts in its birth Status and boot event (App.fw = FW).
    declared = re.search(r'(?m)^FW = "([^"]+)"', (FIRMWARE / "bench" / "app.py").read_text())
    assert declared is not None
    bundle = build_bundle(FIRMWARE, tmp_path / "bundle", signing.generate())
    assert bundle.version == declared.group(1)
