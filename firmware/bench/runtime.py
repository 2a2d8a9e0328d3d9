# What differs between MicroPython on the bench and CPython on the host, in one place:
# const(), the ticks clock, wall time, asyncio sleeps and streams.
# On the host the virtual board sets CLOCK to its virtual clock so simulated time can run
# faster than real time or be stepped by a test.
import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:

    def const(x):  # type: ignore[misc]
        return x


import asyncio

TICKS_PERIOD = const(1 << 30)
_TICKS_HALF = const(1 << 29)

CLOCK = None  # host: an object with ticks_ms(), time(), settime(t), sleep_ms(ms) (a coroutine)


def ticks_ms():
    if CLOCK is not None:
        return CLOCK.ticks_ms() % TICKS_PERIOD
    if MICROPYTHON:
        return time.ticks_ms()
    return int(time.monotonic() * 1000) % TICKS_PERIOD


def ticks_diff(a, b):
    if MICROPYTHON:
        return time.ticks_diff(a, b)
    d = (a - b) % TICKS_PERIOD
    if d >= _TICKS_HALF:
        d -= TICKS_PERIOD
    return d


def ticks_add(a, delta):
    if MICROPYTHON:
        return time.ticks_add(a, delta)
    return (a + delta) % TICKS_PERIOD


def epoch_offset(gmtime):
    # Seconds from 1970 to the port's epoch: the ESP32, like most embedded ports, counts from
    # 2000 (MicroPython's time docs; unix, webassembly and rp2 count from 1970, as CPython).
    return 946684800 if gmtime(0)[0] == 2000 else 0


_EPOCH = epoch_offset(time.gmtime)


def wall():
    # Unix seconds by the board's RTC (not to be trusted before the clock is set).
    if CLOCK is not None:
        return int(CLOCK.time())
    return int(time.time()) + _EPOCH


def sleep_ms(ms):
    # An awaitable.
    if CLOCK is not None:
        return CLOCK.sleep_ms(ms)
    if MICROPYTHON:
        return asyncio.sleep_ms(ms)
    return asyncio.sleep(ms / 1000)


def open_connection(host, port, ssl=None):
    if ssl is None:
        return asyncio.open_connection(host, port)
    return asyncio.open_connection(host, port, ssl=ssl)


async def wait_for_ms(aw, ms):
    # asyncio.wait_for in the clock's time: a virtual clock may run faster than real time.
    if CLOCK is None:
        if MICROPYTHON:
            return await asyncio.wait_for_ms(aw, ms)
        return await asyncio.wait_for(aw, ms / 1000)
    w = getattr(CLOCK, "wait_for", None)  # a stepped clock times out when stepped there
    if w is not None:
        return await w(aw, ms)
    return await asyncio.wait_for(aw, CLOCK.real_s(ms))


# Real time, for what lives in real time even when the board's clock runs fast: the broker's
# keepalive, TCP, connect and read timeouts. On the bench it is the same ticks clock.
def real_ms():
    if MICROPYTHON:
        return time.ticks_ms()
    return int(time.monotonic() * 1000) % TICKS_PERIOD


def real_sleep_ms(ms):
    # An awaitable lasting ms of real time.
    if CLOCK is None:
        return sleep_ms(ms)
    return asyncio.sleep(ms / 1000)


async def net_wait_ms(aw, ms):
    # asyncio.wait_for for network waits: never shorter than ms of real time, whatever the
    # speed of a virtual clock (a broker does not answer faster because the bench's time does).
    if CLOCK is None:
        return await wait_for_ms(aw, ms)
    return await asyncio.wait_for(aw, max(CLOCK.real_s(ms), ms / 1000))


def unload(name):
    # Drop a module imported for one job (boot, a command, a doze, spool upkeep, OTA,
    # self-test) so its bytecode leaves the heap; its names stay interned.
    sys.modules.pop("bench." + name, None)
    pkg = sys.modules.get("bench")
    if pkg is not None and hasattr(pkg, name):
        delattr(pkg, name)


def job(name, fn, *args):
    # bench.<name>.<fn>(*args) with the module imported for this call only. A coroutine it
    # returns still runs when awaited: its functions hold the module's globals, and the
    # module is collected when it ends.
    mod = __import__("bench." + name, None, None, (fn,))
    try:
        return getattr(mod, fn)(*args)
    finally:
        unload(name)
