"""The bench's state of charge across a reset and across a power cut, on the virtual bench.

A reset (the `reboot` command, an update, the watchdog, a crash) keeps the ESP32's RTC memory, so
the count goes on where it was; a power cut clears it, and the first sample seeds the count from
the voltage (docs/firmware.md, State of charge). The virtual board's RTC memory lives as long as
its board: through the resets of one VirtualBench, not into the next one a power cut makes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rig import Rig, config


def test_a_reset_keeps_the_count_and_its_power_state_and_a_power_cut_seeds_from_the_voltage(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, config())

    def booted(n: int) -> bool:
        app = rig.vb.app
        return len(rig.events("boot")) >= n and app is not None and app.power is not None

    async def go() -> None:
        rig.start()
        assert await rig.run_for(60, 1000, until=lambda: booted(1))
        assert await rig.run_for(30, 1000, until=lambda: rig.vb.app.power.seeded)
        seeded = rig.vb.app.power.soc_cp()
        assert 5900 <= seeded <= 6100, seeded  # 13.25 V at rest: 60 % on the LiFePO4 curve
        # An afternoon's load at a voltage the battery holds up (LiFePO4's flat middle): the
        # count falls to about 35 %, below saver_soc (40 %), while the voltage still says 60.
        rig.vb.board.set_battery(13.25, -20.0)
        assert await rig.run_for(3600, 5000, until=lambda: rig.vb.app.power.soc_cp() < 3600)
        rig.vb.board.set_battery(13.25, -0.15)
        assert await rig.run_for(60, 1000, until=lambda: rig.vb.app.power.state == "saver")
        before = rig.vb.app.power.soc_cp()
        ports_before = dict(rig.vb.app.port_on)
        assert ports_before != {n: True for n in ports_before}  # saver switched some off

        rig.vb.app.reboot_requested = 0  # as the `reboot` command asks it
        assert await rig.run_for(120, 1000, until=lambda: booted(2))
        assert rig.events("boot")[-1]["reset"] == "hard"
        assert await rig.run_for(30, 1000, until=lambda: rig.vb.app.power.seeded)
        power = rig.vb.app.power
        assert abs(power.soc_cp() - before) <= 5, (before, power.soc_cp())
        assert power.state == "saver"
        assert rig.vb.app.port_on == ports_before  # the state's ports, not all on
        assert [e for e in rig.events("power") if e["boot"] == rig.vb.app.boot_no] == []

        await rig.power_cut()
        assert await rig.run_for(120, 1000, until=lambda: booted(3))
        assert rig.events("boot")[-1]["reset"] == "power_on"
        assert await rig.run_for(30, 1000, until=lambda: rig.vb.app.power.seeded)
        assert 5900 <= rig.vb.app.power.soc_cp() <= 6100  # from the voltage again
        await rig.stop()

    asyncio.run(go())
