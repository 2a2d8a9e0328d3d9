"""The watchdog, proven on the virtual bench: a task that hangs resets the bench (reset cause
`wdt` in the next `boot` event) within its bound; a healthy day never does.

The bound (docs/firmware.md, "Watchdog"): the supervisor feeds the 120-s watchdog every
second while every critical task has checked in within its limit (sampler and front:
10 s + 3 x sample_s; link: 300 s, longer than one connection attempt's own timeouts). Code
stuck without an await stops the supervisor too: reset 120 s after the last feed. A task
that awaits for ever: reset 120 s after its limit ran out.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from rig import Rig, config

from boards.virtual import firmware_path
from boards.virtual.clock import VirtualClock

WDT_S = 120
LINK_SILENT_S = 300


def firmware(name: str) -> Any:
    firmware_path()
    return __import__(name, None, None, ["_"])


def test_a_sampler_stuck_in_a_loop_resets_the_bench_within_the_watchdog_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_class = firmware("bench.app").App
    stuck: dict[str, float] = {}
    sample = app_class.sample

    def stuck_sample(self: Any, dt: int) -> None:
        if not stuck and self.uptime_ms() > 90_000:
            stuck["t"] = rig.clock.time()
            battery = self.drivers["battery"]
            # A driver retrying, never yielding to the event loop, for 10 minutes: long
            # past the watchdog (without one the bench would go on after it, and this fails).
            while rig.clock.time() - stuck["t"] < 600:
                battery.bus_mv()
        sample(self, dt)

    monkeypatch.setattr(app_class, "sample", stuck_sample)
    # A running clock: code that never awaits stops a stepped clock with it.
    rig = Rig(tmp_path, config(), clock=VirtualClock(start=time.time() - 86400, speed=20))
    rig.set_link(False)

    async def go() -> None:
        rig.start()
        assert await rig.wait_real(lambda: len(rig.events("boot")) >= 2, 30)
        boots = rig.events("boot")
        assert [b["reset"] for b in boots] == ["power_on", "wdt"], boots
        assert len(rig.vb.wdt_bites) == 1
        took = rig.vb.wdt_bites[0] - stuck["t"]
        assert WDT_S - 1 <= took <= WDT_S + 2, took  # last feed <= 1 s before it stuck
        await rig.stop()

    asyncio.run(go())


def test_a_link_task_that_never_returns_resets_the_bench_within_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link_class = firmware("bench.link").Link
    hangs = {"n": 0}
    run = link_class.run

    async def hung_run(self: Any) -> None:
        if hangs["n"] == 0:
            hangs["n"] = 1
            hangs["t"] = rig.clock.time()
            self.app.checkin("link")
            await asyncio.Event().wait()  # a read with no timeout, on a silent socket
        await run(self)

    monkeypatch.setattr(link_class, "run", hung_run)
    rig = Rig(tmp_path, config())

    async def go() -> None:
        rig.start()
        bound = LINK_SILENT_S + WDT_S
        assert await rig.run_for(bound + 60, 1000, until=lambda: len(rig.events("boot")) >= 2)
        boots = rig.events("boot")
        assert [b["reset"] for b in boots] == ["power_on", "wdt"], boots
        took = rig.vb.wdt_bites[0] - hangs["t"]
        assert bound <= took <= bound + 2, took
        hung = [e for e in rig.events("fault") if e["code"] == "task_hung"]
        assert hung and hung[0]["boot"] == boots[0]["boot"] and "link" in hung[0]["detail"]
        await rig.stop()

    asyncio.run(go())


def test_a_healthy_day_is_never_reset_by_the_watchdog(tmp_path: Path) -> None:
    from boards.virtual.physics import World
    from klupa.sim.bench import drive

    # Wi-Fi up, the broker unreachable all day; people on the bench, phones on its ports.
    rig = Rig(tmp_path, config(sample_s=10, period=600))
    start = rig.clock.time()
    profile = rig.vb.profile
    world = World(
        "mostar",
        3,
        start,
        chemistry=profile["battery"]["chemistry"],
        capacity_ah=profile["battery"]["capacity_ah"],
        ports=len(profile["ports"]),
        wireless_port=None,
        soc=0.7,
        people_scale=3.0,
    )

    async def go() -> None:
        stop = asyncio.Event()
        rig.start()
        physics = asyncio.ensure_future(drive(rig.vb.board, world, rig.clock, profile, stop))
        await rig.run_for(86400, 10000)
        assert rig.vb.board.wdt_timeout_ms == WDT_S * 1000  # the watchdog ran all day
        assert rig.vb.app.healthy
        stop.set()
        physics.cancel()  # it sleeps on the stepped clock, which stands still from here
        await asyncio.gather(physics, return_exceptions=True)
        assert len(rig.events("boot")) == 1 and not rig.vb.wdt_bites, rig.vb.reasons
        assert not [e for e in rig.events("fault") if e["code"] == "task_hung"]
        assert len([r for r in rig.records if r[2] == 1]) >= 86400 // 600 - 2  # telemetry
        assert rig.events("session")  # phones charged: the day was a working one
        await rig.stop()

    asyncio.run(go())
