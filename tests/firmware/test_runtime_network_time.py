"""Network waits stay in real time when the virtual clock runs fast (klupa sim at x144): the
broker and TCP do not answer sooner because the bench's clock is faster."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from bench import mqtt, runtime

from boards.virtual.clock import VirtualClock


@pytest.fixture
def fast_clock() -> Iterator[VirtualClock]:
    old = runtime.CLOCK
    clock = VirtualClock(speed=1000.0)
    runtime.CLOCK = clock
    try:
        yield clock
    finally:
        runtime.CLOCK = old


def test_network_wait_is_never_shorter_than_real_time(fast_clock: VirtualClock) -> None:
    async def go() -> None:
        # 200 ms for a network answer that takes 50 ms of real time: it arrives in time
        assert await runtime.net_wait_ms(asyncio.sleep(0.05, "answer"), 200) == "answer"
        # a clock-time wait of the same 200 ms lasts 0.2 ms of real time at x1000
        with pytest.raises(asyncio.TimeoutError):
            await runtime.wait_for_ms(asyncio.sleep(0.05), 200)

    asyncio.run(go())


class Writer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_keepalive_and_dead_link_detection_run_in_real_time(fast_clock: VirtualClock) -> None:
    async def go() -> tuple[Any, bytes, float, Any]:
        c = mqtt.Client(keepalive=1)
        w = Writer()
        c.writer = w
        task = asyncio.create_task(c.keepalive_loop())
        await asyncio.sleep(0.4)  # 400 s of the bench's time, 0.4 s of the broker's
        early = c.error
        await asyncio.sleep(1.8)  # 2.2 s real with no answer: past 1.5 keepalives
        task.cancel()
        return early, w.data, fast_clock.elapsed_ms(), c.error

    early, sent, sim_ms, late = asyncio.run(go())
    assert sim_ms > 1000 * 1000  # the clock did run fast
    assert early is None  # no verdict after 400 simulated seconds
    assert sent.startswith(bytes([0xC0, 0]))  # a PINGREQ, after half a real keepalive
    assert len(sent) <= 2 * 4  # about one ping per half keepalive of real time, not hundreds
    assert isinstance(late, mqtt.MQTTError) and "1.5 keepalives" in str(late)
