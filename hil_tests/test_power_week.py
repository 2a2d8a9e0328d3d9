"""A grey November week on a lead-acid bench: `normal` → `saver` → `critical` and back as the
sun returns, with the ports switched as docs/protocol.md says (Power states).

In this process, on a stepped clock: the unchanged firmware on the virtual board, the physics
of Mostar stepping with it (klupa.sim.bench.drive), Wi-Fi down (the records stay in the spool), the
telemetry and events read through the app's hooks. A simulated week takes well under two
minutes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from boards.virtual import firmware_path
from boards.virtual.bench import VirtualBench, load_profile
from boards.virtual.clock import VirtualClock
from klupa.sim.bench import drive
from testkit.soc_week import bench_world, first_grey_week

NEEDS_PHYSICS = "a grey November week and a battery run down to critical (the virtual physics)"
PROFILE = "bench-s3-v2"
WEEK = 7 * 86400
STEP_MS = 20_000


def test_grey_november_week_power_states(
    tmp_path: Path, needs_physics: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first seed whose November has a week of three overcast days, then three clear ones.
    seed, start = first_grey_week()
    profile = load_profile(PROFILE)
    clock = VirtualClock(start=start, stepped=True)
    config = {
        "bench": "mostar-01",
        "municipality": "mostar",
        "wifi": {"ssid": "klupa-sim", "password": "virtual"},
        "mqtt": {"host": "127.0.0.1", "port": 9},
        "period": 600,
        "sample_s": 10,
    }
    vb = VirtualBench(tmp_path / "flash", profile, config, clock)
    # The firmware waits for the broker in real time (at most 20 s awake in `critical` for the
    # link to drain); on a bench, real time is the bench's time, and on this stepped clock the
    # same wait is made in simulated time, or a stepped week would outrun it.
    firmware_path()
    import bench.runtime as runtime  # type: ignore[import-not-found]

    monkeypatch.setattr(runtime, "real_ms", lambda: clock.ticks_ms() % runtime.TICKS_PERIOD)
    monkeypatch.setattr(runtime, "real_sleep_ms", clock.sleep_ms)
    # no Wi-Fi: nothing leaves the spool
    world = bench_world(profile, seed, start, 0.5, 6.0, outages=[(start, start + 2 * WEEK)])
    windows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def started(app: Any) -> None:
        vb.app = app
        app.on_window = lambda a, t: windows.append(dict(t))
        record_event = app.record_event

        def spy(type_: str, fields: dict[str, Any] | None = None) -> Any:
            events.append({"type": type_, "t": clock.time(), **(fields or {})})
            return record_event(type_, fields)

        app.record_event = spy

    vb._started = started  # type: ignore[method-assign]

    async def run() -> None:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(vb.run()),
            asyncio.create_task(drive(vb.board, world, clock, profile, stop)),
        ]
        for _ in range(WEEK * 1000 // STEP_MS):
            clock.advance(STEP_MS)
            for _ in range(4):
                await asyncio.sleep(0)
            if any(t.done() for t in tasks):
                break
        stop.set()
        vb.stop()
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r

    asyncio.run(run())
    (tmp_path / "windows.json").write_text(json.dumps(windows))

    assert vb.boots == 1, f"the bench rebooted: {vb.reasons}"
    changes = [(e["from"], e["to"]) for e in events if e["type"] == "power"]
    states = ["normal"] + [to for _, to in changes]
    # Down through saver to critical in the grey days, and back up when the sun returns.
    assert states[:3] == ["normal", "saver", "critical"], changes
    back = states.index("critical")
    assert "saver" in states[back:], changes
    assert states[-1] == "normal", changes
    for frm, to in changes:
        assert frm != to
    # Each window's ports as docs/protocol.md says for its state (the app's window dict: ports as
    # [n, on, plug, mA, mWh], battery in mV and SoC in hundredths of a per cent).
    seen = {t["power"] for t in windows}
    assert {"normal", "saver", "critical"} <= seen
    for t in windows:
        on = {p[0]: p[1] for p in t["ports"]}
        if t["power"] == "normal":
            assert all(on.values()), t
        elif t["power"] == "saver":
            assert on[1] and on[2] and not on[3], t
            assert t["period"] == min(3600, 5 * 600)
        else:
            assert not any(on.values()), t
            assert t["period"] == 900
    # The state follows the battery: saver below 40 %, critical below 15 % (or a sag).
    for t in windows:
        if t["power"] == "normal":
            assert t["soc_cp"] >= 3500, t
        if t["power"] == "critical":
            assert t["soc_cp"] < 2500 or t["batt_mv"] < 12600, t
