"""A virtual bench: the unchanged firmware, in this process, on a virtual board.

    clock = VirtualClock(start=time.time() - 3600, speed=20)
    vb = VirtualBench(tmp / "mostar-01", "bench-v1", config, clock)
    await vb.run()            # until stop(); reboots (machine.reset, `reboot`) restart it

``python -m boards.virtual.bench --root DIR --profile bench-v1 --config config.json`` runs one
in its own process. The bench's flash is the folder ``root``: board.json, config.json, its
state and its spool live there, as at the root of the ESP32's file system.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from boards.virtual import BOARDS, FIRMWARE, apploader, display, firmware_path, use_clock
from boards.virtual.clock import VirtualClock, first_done
from boards.virtual.hardware import VirtualBoard
from boards.virtual.mp.virtualboard import HARD_RESET, SOFT_RESET, WDT_RESET, VirtualReset

BLOCKED_S = 2.0  # real seconds without the event loop turning: the bench's code is stuck
LATE_S = 1.0  # a turn of the event loop this late: the host stalled, not the bench


class WatchdogBite(BaseException):  # noqa: N818 - it is the watchdog, not an error
    """Raised in firmware stuck in synchronous code when its watchdog expires (VirtualBench)."""


def load_profile(profile: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A profile by name (``bench-v1``), by path, or as a dict."""
    if isinstance(profile, dict):
        return profile
    path = Path(profile)
    if not path.suffix:
        path = BOARDS / f"{profile}.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


class VirtualBench:
    def __init__(
        self,
        root: str | Path,
        profile: str | Path | dict[str, Any],
        config: dict[str, Any] | None,
        clock: VirtualClock,
        write_files: bool = True,
        mpy_sources: list[str | Path] | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.profile = load_profile(profile)
        if write_files:
            (self.root / "board.json").write_text(json.dumps(self.profile))
            if config is not None:
                (self.root / "config.json").write_text(json.dumps(config))
        self.clock = clock
        self.board = VirtualBoard(self.profile, clock)
        self.app: Any = None
        self.boots = 0
        self.reasons: list[str] = []
        self.crashes: list[str] = []  # exceptions that escaped the app (each one a reset)
        self.ota_boots: list[str] = []  # what the OTA boot step did at each boot
        self.wdt_bites: list[float] = []  # when (bench clock) the watchdog reset the bench
        self._beat = time.monotonic()
        self._bitten = False
        # Folders whose sources may have built a .mpy an OTA puts in the flash (apploader).
        self.mpy_sources = [Path(p) for p in (mpy_sources or [])] + [FIRMWARE]
        self._stop = False
        # A plausible resting world until a test or the physics says otherwise.
        self.board.set_solar(0.0, 0.0)
        self.board.set_battery(13.25, -0.15)
        self.board.set_env(18.5, 55.0)

    def _started(self, app: Any) -> None:
        self.app = app

    async def run(self, max_boots: int | None = None) -> None:
        """Boot the firmware, and again after every reset, until stop() or max_boots."""
        firmware_path()
        use_clock(self.clock)
        import main  # type: ignore[import-not-found]

        hw = main.Hardware(
            self.board.machine, self.board.network, self.board.esp32, self.board.ntptime
        )
        hw.open_connection = self.board.open_connection
        watcher = self._watch_stuck_loop()
        try:
            while not self._stop and (max_boots is None or self.boots < max_boots):
                await self._boot(main, hw)
        finally:
            watcher.set()

    async def _boot(self, main: Any, hw: Any) -> None:
        self.boots += 1
        self.board.wdt_timeout_ms = None  # a reset stops the watchdog until the app starts it
        try:
            # As main.run() on the ESP32: the OTA step first, with the provisioned app (a
            # fresh interpreter there), then the app it leaves.
            apploader.activate(None, self.mpy_sources)
            result, app_dir = main.prepare(str(self.root), self.board.cause)
            self.ota_boots.append(result)
            if result:  # <root>/app changed while its path stayed: import it afresh
                apploader.forget_app_modules()
            apploader.activate(None if app_dir is None else Path(app_dir), self.mpy_sources)
            use_clock(self.clock)
            reason = await self._until_watchdog(
                main.start(str(self.root), hw, self._started, result)
            )
            self.reasons.append(str(reason))
            self.board.machine.reset()
        except VirtualReset as e:
            self.board.cause = e.cause
        except Exception as e:  # noqa: BLE001 - the app crashed: the board resets
            import traceback

            traceback.print_exc()
            main.keep_fault(str(self.root), e)  # as main.run() does on the ESP32
            self.crashes.append(repr(e))
            self.board.cause = HARD_RESET
            await self.clock.sleep_ms(1000)
        finally:
            self.board.kill_sockets()
        await self._end_tasks()

    async def _end_tasks(self) -> None:
        """End the tasks this boot's app started before the next boot runs, as a reset ends
        all of the chip's work. App.main cancels them but cannot wait: a cancelled task ends
        at its next turn, or not at all when it swallowed the cancellation (asyncio.wait_for on
        Python 3.11, which the firmware's timeouts use, returns the result it waited for when
        that came with the cancellation). Such a link would go on as the old boot beside the
        new one, with the bench's client id. So each task left is cancelled again until done."""
        tasks = getattr(self.app, "tasks", None) or ()
        left = [t for t in tasks if isinstance(t, asyncio.Future)]
        rounds = 0
        while left := [t for t in left if not t.done()]:
            if rounds:  # for the process's log, not the bench's console
                print(f"reset: cancelled again ({rounds}): {len(left)} task(s)", file=sys.stderr)
            rounds += 1
            for t in left:
                t.cancel()
            await asyncio.wait(left, timeout=0.1)

    async def _until_watchdog(self, app: Any) -> Any:
        """Run the app until it returns, or until its watchdog, not fed in time, resets the
        board (VirtualReset with WDT_RESET, as the ESP32's reset_cause() tells it)."""
        task = asyncio.ensure_future(app)
        bite = asyncio.ensure_future(self._watchdog())
        await first_done(task, bite)
        if task.done() and not isinstance(task.exception(), WatchdogBite):
            bite.cancel()
            return task.result()
        task.cancel()
        bite.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self.wdt_bites.append(self.clock.time())
        raise VirtualReset(WDT_RESET)

    async def _watchdog(self) -> None:
        # The bench's clock decides when the watchdog bites; the beat is real time, for the
        # thread that finds the event loop stuck in the bench's code (_watch_stuck_loop).
        # A host that stalls the whole process (a busy machine) stalls the bench's virtual
        # time with it, not the bench's code: such a gap is not held against the feeding.
        self._bitten = False
        while not self._bitten and not self.board.wdt_expired():
            self._beat = time.monotonic()
            if self.clock.stepped:
                await self.clock.sleep_ms(100)
                continue
            nap = min(0.02, 0.1 / self.clock.speed)
            await asyncio.sleep(nap)
            late = time.monotonic() - self._beat - nap
            if late > LATE_S and not self._bitten:
                fed = self.board.wdt_fed_ms + late * 1000.0 * self.clock.speed
                self.board.wdt_fed_ms = min(fed, self.clock.elapsed_ms())

    def _watch_stuck_loop(self) -> threading.Event:
        """A task of the bench that never awaits (a loop stuck in synchronous code) stops the
        event loop, and with it every coroutine that could notice. On the ESP32 the hardware
        watchdog resets the chip; here a thread finds the watchdog expired while the loop has
        not turned for BLOCKED_S and raises WatchdogBite in the loop's thread, in the stuck
        code. The task it ends fails with it; _until_watchdog then resets the board."""
        done = threading.Event()
        if self.clock.stepped:  # a stuck loop stops a stepped clock too: it never bites
            return done
        loop_thread = threading.get_ident()
        self._beat = time.monotonic()

        def watch() -> None:
            bitten = 0.0
            while not done.wait(0.02):
                now = time.monotonic()
                if (
                    self.board.wdt_expired()
                    and now - self._beat > BLOCKED_S
                    and now - bitten > BLOCKED_S
                ):
                    bitten = now
                    self._bitten = True
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(loop_thread), ctypes.py_object(WatchdogBite)
                    )

        threading.Thread(target=watch, name="virtual-wdt", daemon=True).start()
        return done

    def screenshot(self, path: str | Path, scale: int = 1) -> Path:
        """Write what the bench's display shows as a PNG (scale 1: the exact 1-bit picture)."""
        return display.save_png(self.board.display, path, scale)

    def stop(self) -> None:
        self._stop = True

    def soft_reset(self) -> None:
        self.board.cause = SOFT_RESET


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m boards.virtual.bench", description=__doc__)
    ap.add_argument("--root", required=True, help="the bench's flash folder")
    ap.add_argument("--profile", default="bench-v1", help="board profile name or path")
    ap.add_argument("--config", help="config.json to install in the flash folder")
    ap.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    ap.add_argument("--start-ago", type=float, default=0.0, help="start this many s in the past")
    args = ap.parse_args(argv)

    config = json.loads(Path(args.config).read_text()) if args.config else None
    if config is None and not (Path(args.root) / "config.json").exists():
        print("error: no config.json in --root and no --config given", file=sys.stderr)
        return 2
    clock = VirtualClock(start=time.time() - args.start_ago, speed=args.speed)
    vb = VirtualBench(args.root, args.profile, config, clock)
    try:
        asyncio.run(vb.run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
