"""The virtual board's clock: simulated time that runs at a settable speed or is stepped.

Firmware on the host reads time through ``bench.runtime``, which asks this clock when the
virtual board installs it. Two modes:

- running (default): simulated time = start + real elapsed x ``speed``; asyncio sleeps last
  the simulated duration divided by ``speed``. ``set_speed`` changes the factor at any moment
  without a jump.
- stepped: time stands still until a test calls :meth:`advance`, which wakes the sleepers
  whose deadline has passed, in order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any


class VirtualClock:
    def __init__(self, start: float | None = None, speed: float = 1.0, stepped: bool = False):
        self.start_wall = time.time() if start is None else float(start)
        self.speed = float(speed)
        self.stepped = stepped
        self._base_ms = 0.0  # simulated ms since start at _base_real
        self._base_real = time.monotonic()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = itertools.count()

    # -- reading
    def elapsed_ms(self) -> float:
        if self.stepped:
            return self._base_ms
        return self._base_ms + (time.monotonic() - self._base_real) * 1000.0 * self.speed

    def ticks_ms(self) -> int:
        return int(self.elapsed_ms())

    def time(self) -> float:
        return self.start_wall + self.elapsed_ms() / 1000.0

    def real_s(self, ms: float) -> float:
        """Real seconds that ``ms`` simulated milliseconds take (for network timeouts)."""
        if self.stepped:
            return ms / 1000.0
        return ms / 1000.0 / self.speed

    # -- changing
    def set_speed(self, speed: float) -> None:
        self._base_ms = self.elapsed_ms()
        self._base_real = time.monotonic()
        self.speed = float(speed)

    def advance(self, ms: float) -> None:
        """Stepped mode: move time forward and wake every sleeper that is due."""
        if not self.stepped:
            raise RuntimeError("advance() needs a stepped clock")
        self._base_ms += ms
        while self._sleepers and self._sleepers[0][0] <= self._base_ms:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, aw: Any, ms: float) -> Any:
        """asyncio.wait_for with a timeout of ``ms`` on this clock (stepped: when advance()
        gets there; running: ``ms`` divided by the speed, in real time)."""
        if not self.stepped:
            return await asyncio.wait_for(aw, self.real_s(ms))
        task = asyncio.ensure_future(aw)
        timer = asyncio.ensure_future(self.sleep_ms(ms))
        await first_done(task, timer)
        timer.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise TimeoutError

    async def sleep_ms(self, ms: float) -> None:
        if not self.stepped:
            await asyncio.sleep(max(0.0, ms) / 1000.0 / self.speed)
            return
        if ms <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._base_ms + ms, next(self._count), fut))
        await fut


async def first_done(*tasks: asyncio.Future[Any]) -> None:
    """Wait until one of ``tasks`` is done; cancelled (or failing) meanwhile, cancel them all."""
    try:
        await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        for t in tasks:
            t.cancel()
        raise
