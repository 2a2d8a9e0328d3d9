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
import json
import sys
from pathlib import Path
from typing import Any

from boards.virtual import BOARDS, FIRMWARE, apploader, firmware_path, use_clock
from boards.virtual.clock import VirtualClock
from boards.virtual.hardware import HARD_RESET, SOFT_RESET, VirtualBoard, VirtualReset


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
        while not self._stop and (max_boots is None or self.boots < max_boots):
            self.boots += 1
            try:
                # As main.run() on the ESP32: the OTA step first, then the app it leaves.
                result, app_dir = main.prepare(str(self.root))
                self.ota_boots.append(result)
                if result:  # <root>/app changed while its path stayed: import it afresh
                    apploader.forget_app_modules()
                apploader.activate(None if app_dir is None else Path(app_dir), self.mpy_sources)
                use_clock(self.clock)
                reason = await main.start(str(self.root), hw, self._started, result)
                self.reasons.append(str(reason))
                self.board.machine.reset()
            except VirtualReset as e:
                self.board.cause = e.cause
            except Exception as e:  # noqa: BLE001 - the app crashed: the board resets
                import traceback

                traceback.print_exc()
                self.crashes.append(repr(e))
                self.board.cause = HARD_RESET
                await self.clock.sleep_ms(1000)
            finally:
                self.board.kill_sockets()

    def screenshot(self, path: str | Path, scale: int = 1) -> Path:
        """Write what the bench's display shows as a PNG (scale 1: the exact 1-bit picture)."""
        return self.board.display.save_png(path, scale)

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
    import time

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
