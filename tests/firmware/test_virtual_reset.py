"""A reset of the in-process virtual bench ends every task of the boot before the next boot runs,
as a reset of the chip does: none goes on as the old boot beside the new one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rig import Rig, config

from boards.virtual import firmware_path


def test_a_task_that_swallowed_its_cancellation_is_ended_before_the_next_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    firmware_path()
    import bench.app  # type: ignore[import-not-found]

    supervisor = bench.app.App.supervisor
    stubborn: list[asyncio.Task[None]] = []
    seen_at_next_boot: list[bool] = []

    async def swallows_one_cancel() -> None:
        # As asyncio.wait_for on Python 3.11 may: what it waited for completed as the
        # cancellation came, and it returned that instead of raising CancelledError.
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
        while True:  # the old boot, going on
            await asyncio.sleep(0.001)

    async def first_boot_reboots(self: Any) -> Any:
        if stubborn:
            seen_at_next_boot.append(stubborn[0].done())
            return await supervisor(self)
        stubborn.append(asyncio.create_task(swallows_one_cancel()))
        self.tasks.append(stubborn[0])  # one of the app's tasks, which App.main cancels
        await asyncio.sleep(0.01)  # it is waiting in its sleep
        return "reboot"

    monkeypatch.setattr(bench.app.App, "supervisor", first_boot_reboots)
    rig = Rig(tmp_path, config())

    async def go() -> None:
        rig.start()
        try:
            assert await rig.run_for(120, 1000, until=lambda: seen_at_next_boot)
            assert rig.vb.boots == 2
            assert seen_at_next_boot == [True]
        finally:
            await rig.stop()
            for t in stubborn:
                t.cancel()

    asyncio.run(go())
