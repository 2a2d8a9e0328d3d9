"""A virtual bench on a stepped clock, driven from an async test: power cuts, and every record
the app makes, with its boot, as the app made it (the host tests of health and watchdog)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boards.virtual import FIRMWARE
from boards.virtual.bench import VirtualBench
from boards.virtual.clock import VirtualClock

KIND_TELEMETRY, KIND_EVENT = 1, 2


def base_config(port: int, **extra: Any) -> dict[str, Any]:
    """Bench mostar-01 of mostar, its broker ``port`` on loopback, with ``extra`` (the tuning
    of the tests that use it)."""
    cfg: dict[str, Any] = {
        "bench": "mostar-01",
        "municipality": "mostar",
        "wifi": {"ssid": "klupa-test", "password": "x"},
        "mqtt": {"host": "127.0.0.1", "port": port},
        "boot": 3000000,
    }
    cfg.update(extra)
    return cfg


def config(port: int = 9, **extra: Any) -> dict[str, Any]:
    """A bench whose broker is ``port`` on loopback (9: nobody listens)."""
    return base_config(port, **{"period": 60, "sample_s": 5, **extra})


class Rig:
    def __init__(
        self,
        tmp: Path,
        cfg: dict[str, Any],
        clock: VirtualClock | None = None,
        profile: str = "bench-v1",
    ) -> None:
        self.clock = clock or VirtualClock(start=time.time() - 10 * 86400, stepped=True)
        self.root = tmp / "flash"
        self.cfg = cfg
        self.profile = profile
        self.link_up = True
        self.records: list[tuple[int, int, int, dict[str, Any] | None]] = []  # boot, seq, kind
        self.boot_times: list[float] = []  # bench clock at each `boot` event
        self.benches: list[VirtualBench] = []
        self.vb = self._bench(write=True)
        self.task: asyncio.Task[None] | None = None

    # -- the bench
    def _bench(self, write: bool = False) -> VirtualBench:
        vb = VirtualBench(self.root, self.profile, self.cfg, self.clock, write_files=write)
        vb.board.set_battery(13.25, -0.15)
        vb.board.set_link(self.link_up)
        vb._started = self._started  # type: ignore[method-assign]
        self.benches.append(vb)
        return vb

    def _started(self, app: Any) -> None:
        self.vb.app = app
        record = app.record

        def spy(kind: int, body: bytes) -> int:
            seq: int = record(kind, body)
            fields = json.loads(b"{" + bytes(body) + b"}") if kind != KIND_TELEMETRY else None
            if fields is not None and fields.get("type") == "boot":
                self.boot_times.append(self.clock.time())
            self.records.append((app.boot_no, seq, kind, fields))
            return seq

        app.record = spy

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.vb.run())

    async def power_cut(self) -> None:
        """The bench loses power: whatever it was doing stops; it boots with power_on."""
        assert self.task is not None
        self.vb.stop()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        for _ in range(5):
            await asyncio.sleep(0)
        self.vb.board.kill_sockets()
        self.vb = self._bench()
        self.start()

    def set_link(self, up: bool) -> None:
        self.link_up = up
        self.vb.board.set_link(up)

    async def run_for(
        self,
        seconds: float,
        step_ms: int = 1000,
        until: Callable[[], Any] | None = None,
        real_s: float = 0.0,
    ) -> bool:
        """Advance the bench's clock by ``seconds`` in steps; True as soon as ``until()``."""
        end = self.clock.elapsed_ms() + seconds * 1000
        while self.clock.elapsed_ms() < end:
            self.clock.advance(step_ms)
            for _ in range(6):
                await asyncio.sleep(0)
            if real_s:
                await asyncio.sleep(real_s)
            if self.task is not None and self.task.done():
                self.task.result()  # the bench's run ended: say why
            if until is not None and until():
                return True
        return False

    async def wait_real(self, until: Callable[[], Any], timeout_s: float) -> bool:
        """A running clock: wait (real time) until ``until()``; False after ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if until():
                return True
            if self.task is not None and self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)
        return False

    async def stop(self) -> None:
        if self.task is not None:
            self.vb.stop()
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.vb.board.kill_sockets()

    # -- what it recorded
    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        out = []
        for boot, seq, kind, f in self.records:
            if kind == KIND_EVENT and f is not None and (type_ is None or f["type"] == type_):
                out.append({"boot": boot, "seq": seq, **f})
        return out

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / "state.json").read_text())
        return data


def flash_app(root: Path, folder: str, app_py_prefix: str = "") -> Path:
    """The firmware's packages as ``.py`` files in ``<root>/<folder>`` (an app OTA installed,
    or staged), with ``app_py_prefix`` run first at the import of ``bench.app``."""
    dest = root / folder
    for pkg in ("bench", "drivers"):
        shutil.copytree(FIRMWARE / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    if app_py_prefix:
        app = dest / "bench" / "app.py"
        app.write_text(app_py_prefix + app.read_text())
    return dest
