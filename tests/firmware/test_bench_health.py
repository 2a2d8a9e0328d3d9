"""Health, safe mode and the OTA trial on the virtual bench (docs/protocol.md, "Bench health, safe
mode and app updates"), in stepped virtual time: hours and days in seconds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from rig import Rig, config, flash_app

from boards.virtual import firmware_path


def app_class() -> Any:
    firmware_path()
    import bench.app  # type: ignore[import-not-found]

    return bench.app.App


def boot_events(rig: Rig) -> list[dict[str, Any]]:
    return rig.events("boot")


def test_three_failed_boots_give_safe_mode_which_guards_the_battery_and_retries_normal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_class()
    broken = {"on": True}
    sample = app.sample

    def failing_sample(self: Any, dt: int) -> None:
        if broken["on"]:
            raise RuntimeError("a sampler bug")
        sample(self, dt)

    monkeypatch.setattr(app, "sample", failing_sample)
    rig = Rig(tmp_path, config())

    async def go() -> None:
        rig.start()
        # Three boots whose sampler dies: never healthy, each ended by the watchdog.
        assert await rig.run_for(900, 2000, until=lambda: len(boot_events(rig)) >= 4)
        boots = boot_events(rig)
        assert [b["safe"] for b in boots] == [False, False, False, True], boots
        assert [b["reset"] for b in boots] == ["power_on", "wdt", "wdt", "wdt"]
        faults = [e for e in rig.events("fault") if e["boot"] == boots[3]["boot"]]
        assert ("unhealthy_boots", "3 boots never became healthy") in [
            (f["code"], f["detail"]) for f in faults
        ]
        hung = [e for e in rig.events("fault") if e["code"] == "task_hung"]
        assert hung and "sampler" in hung[0]["detail"]
        # Each dead sampler's traceback, kept in flash, is reported after the next boot.
        crashes = [e for e in rig.events("fault") if e["code"] == "crash"]
        assert [c["boot"] for c in crashes] == [b["boot"] for b in boots[1:4]], crashes
        for c in crashes:
            assert c["detail"].startswith("RuntimeError: a sampler bug @ "), c
            assert "test_bench_health.py" in c["detail"] and len(c["detail"]) <= 120
        # Safe mode still guards the battery and the ports.
        board = rig.vb.board
        board.set_port(1, 3.5)  # a short on port 1, above its limit
        assert await rig.run_for(60, 2000, until=lambda: rig.events("tamper"))
        assert not board.port_enabled(1)
        board.set_battery(11.2, -1.5)  # sagging under load
        assert await rig.run_for(120, 2000, until=lambda: rig.events("power"))
        assert rig.events("power")[-1]["to"] == "critical"
        assert not any(board.port_enabled(p["n"]) for p in board.profile["ports"])
        board.set_battery(13.25, -0.15)
        assert rig.vb.app.safe and not rig.vb.app.healthy
        # After 1 h it tries normal mode by itself; the sampler still fails: back to safe
        # mode, and the next try waits 2 h.
        t_safe = rig.boot_times[3]
        assert await rig.run_for(2 * 3600, 2000, until=lambda: len(boot_events(rig)) >= 6)
        boots = boot_events(rig)
        assert [b["safe"] for b in boots[4:6]] == [False, True], boots
        assert 3600 <= rig.boot_times[4] - t_safe <= 3600 + 320
        assert rig.state()["wait"] == 2 * 3600
        # Mended (think: the bad neighbour on the I2C bus is gone): the next try, 2 h on,
        # becomes healthy and stays in normal mode.
        broken["on"] = False
        assert not await rig.run_for(7000, 2000, until=lambda: len(boot_events(rig)) >= 7)
        assert await rig.run_for(600, 2000, until=lambda: len(boot_events(rig)) >= 7)
        assert 7200 <= rig.boot_times[6] - rig.boot_times[5] <= 7200 + 320
        assert await rig.run_for(120, 2000, until=lambda: rig.vb.app.healthy)
        assert boot_events(rig)[6]["safe"] is False
        st = rig.state()
        assert st["unhealthy"] == 0 and "wait" not in st and not st["safe"]
        await rig.stop()

    asyncio.run(go())


def test_a_crash_at_import_of_the_app_counts_as_an_unhealthy_boot(tmp_path: Path) -> None:
    rig = Rig(tmp_path, config())
    counter = rig.root / "crashes"
    counter.write_text("3")
    # An app (as OTA installs it) that crashes at import three times, then imports.
    flash_app(
        rig.root,
        "app",
        f"_n = int(open({str(counter)!r}).read())\n"
        "if _n > 0:\n"
        f"    open({str(counter)!r}, 'w').write(str(_n - 1))\n"
        "    raise RuntimeError('broken build')\n",
    )

    async def go() -> None:
        rig.start()
        assert await rig.run_for(60, 500, until=lambda: boot_events(rig))
        assert len(rig.benches[0].crashes) == 3
        boot = boot_events(rig)[0]
        assert boot["safe"] is True and boot["reset"] == "hard", boot
        # The crash at import, kept in flash, told after the boot: what and where.
        crash = [e for e in rig.events("fault") if e["code"] == "crash"]
        assert len(crash) == 1 and crash[0]["seq"] > boot["seq"], crash
        assert crash[0]["detail"].startswith("RuntimeError: broken build @ app.py:"), crash
        assert len(crash[0]["detail"]) <= 120
        assert not (rig.root / "fault.json").exists()  # told once
        assert rig.state()["last_fault"] == crash[0]["detail"]
        assert rig.state()["unhealthy"] == 3
        # Mended (the counter ran out): an operator's `reboot` tries normal mode at once.
        await rig.run_for(120, 1000)
        assert len(boot_events(rig)) == 1
        rig.vb.app.on_command(b'{"id":"c-1","op":"reboot"}')
        assert await rig.run_for(60, 1000, until=lambda: len(boot_events(rig)) >= 2)
        assert boot_events(rig)[1]["safe"] is False
        assert await rig.run_for(90, 1000, until=lambda: rig.vb.app.healthy)
        assert rig.state()["unhealthy"] == 0
        await rig.stop()

    asyncio.run(go())


def test_power_cuts_soon_after_boot_do_not_give_safe_mode(tmp_path: Path) -> None:
    rig = Rig(tmp_path, config())
    rig.set_link(False)

    async def go() -> None:
        rig.start()
        for uptime in (30, 20, 40, 10, 50):
            await rig.run_for(uptime, 1000)
            await rig.power_cut()
        assert await rig.run_for(90, 1000, until=lambda: rig.vb.app and rig.vb.app.healthy)
        boots = boot_events(rig)
        assert len(boots) == 6 and not any(b["safe"] for b in boots), boots
        await rig.stop()

    asyncio.run(go())


def stage_trial(root: Path) -> None:
    """A new app staged by OTA (the firmware's own files, as version 1.1.0)."""
    flash_app(root, "app.new")
    (root / "ota.json").write_text(
        json.dumps({"state": "staged", "version": "1.1.0", "prev": "1.0.0", "report": None})
    )


def ota_state(rig: Rig) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((rig.root / "ota.json").read_text())
    return data


def test_a_trial_app_with_wifi_and_no_broker_rolls_back_after_10_minutes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, config())  # Wi-Fi up, nobody listens on the broker's port
    stage_trial(rig.root)

    async def go() -> None:
        rig.start()
        assert await rig.run_for(120, 1000, until=lambda: rig.vb.app and rig.vb.app.healthy)
        assert rig.benches[0].ota_boots == ["switched"]
        # Healthy by its own tasks, yet its birth is never acknowledged: at 9 min still on
        # trial, by 10 min with Wi-Fi rolled back and rebooted into the previous app.
        await rig.run_for(420, 1000)
        assert ota_state(rig)["state"] == "trial" and len(boot_events(rig)) == 1
        assert await rig.run_for(180, 1000, until=lambda: len(boot_events(rig)) >= 2)
        assert 600 <= rig.boot_times[1] - rig.boot_times[0] <= 600 + 15
        st = ota_state(rig)
        assert st["state"] == "" and st["version"] == "1.0.0", st
        assert not (rig.root / "app").exists()  # the provisioned app runs again
        ota = rig.events("ota")
        assert ("rolled_back", "1.1.0") in [(e["state"], e["version"]) for e in ota]
        await rig.stop()

    asyncio.run(go())


def test_a_trial_app_without_wifi_stays_on_trial_running_across_a_power_cut(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, config())
    rig.set_link(False)
    stage_trial(rig.root)

    async def go() -> None:
        rig.start()
        await rig.run_for(3 * 3600, 5000)
        assert ota_state(rig)["state"] == "trial"
        assert len(boot_events(rig)) == 1 and rig.vb.app.healthy
        await rig.power_cut()  # healthy at its last boot: not a failed trial
        assert await rig.run_for(90, 1000, until=lambda: rig.vb.app and rig.vb.app.healthy)
        assert rig.vb.ota_boots == ["trial"]
        assert ota_state(rig)["state"] == "trial" and (rig.root / "app").is_dir()
        assert not rig.events("ota")
        await rig.stop()

    asyncio.run(go())


def test_a_week_without_wifi_and_with_power_cuts_ends_in_normal_mode_with_its_records_delivered(
    tmp_path: Path, mosquitto: Any, firmware_kit: dict[str, Any]
) -> None:
    kit = firmware_kit
    gw = kit["Gateway"](mosquitto.host, mosquitto.port)
    rig = Rig(tmp_path, config(mosquitto.port, period=1800, sample_s=30))
    rig.clock.start_wall = __import__("time").time() - 9 * 86400
    day = 86400

    def received() -> set[tuple[int, int]]:
        return {(m["boot"], m["seq"]) for leaf in ("telemetry", "event") for m in gw.of(leaf)}

    async def go() -> None:
        rig.start()
        # Online first: the clock is set and the birth acknowledged.
        assert await rig.run_for(
            300, 1000, until=lambda: rig.vb.app and rig.vb.app.link.birth_acked, real_s=0.01
        )
        rig.set_link(False)
        # A week without Wi-Fi. Power cuts: after a day, then three within a minute of boot
        # (none of them the app's fault), then after two days; the last boot runs on.
        for uptime in (day, 30, 20, 45, 2 * day):
            await rig.run_for(uptime, 60_000 if uptime > 60 else 1000)
            await rig.power_cut()
        await rig.run_for(7 * day - 3 * day - 95, 60_000)
        assert not rig.vb.app.safe and rig.vb.app.healthy
        rig.set_link(True)
        # Every record whose time the bench knows goes out: the first boot's (its clock was
        # set before the outage) and the last one's, which sets its clock now.
        timed = {e["boot"] for e in rig.events("clock")}
        made = {(b, s) for b, s, _, _ in rig.records}

        def delivered() -> bool:
            timed.update(e["boot"] for e in rig.events("clock"))
            return {(b, s) for b, s in made if b in timed} <= received()

        assert await rig.run_for(1800, 1000, until=delivered, real_s=0.01)
        boots = rig.events("boot")
        assert len(boots) == 6 and not any(b["safe"] for b in boots), boots
        last = boots[-1]["boot"]
        assert timed == {boots[0]["boot"], last}
        assert len([1 for b, s, k, _ in rig.records if b == last and k == 1]) >= 4 * 48 - 2
        # A limit by design (docs/firmware.md, Delivery): the three short boots and the two-day
        # one never learnt their time (no Wi-Fi from power-on to power cut), so their records
        # stay in the spool unpublished rather than be sent with a guessed time.
        untimed = {(b, s) for b, s in made if b not in timed}
        assert not untimed & received()
        await rig.stop()

    try:
        asyncio.run(go())
    finally:
        gw.close()
