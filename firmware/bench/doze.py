# The `critical` state's sleep between windows (docs/firmware.md, "The `critical` state"):
# announce it, leave the broker cleanly, light-sleep until the next window is due. The
# sampler imports this module for one doze and drops it afterwards, so a bench that never
# reaches `critical` never holds its bytecode.
from bench import protocol, runtime
from bench.runtime import const, ticks_diff, ticks_ms

_DOZE_STEP_MS = const(5000)  # a critical-state sleep wakes this often for the watchdog
_LINK_DRAIN_MS = const(20000)  # at most this long awake in `critical` for the link to send


async def doze(app, ms):
    # `critical`: announce the sleep, leave the broker cleanly, sleep until the next window.
    # A touch wakes the bench (the display lights for a vote); it sleeps again 30 s after
    # the last touch. The sampler wakes the link once it has closed the next window; a doze
    # cut short (the state changed, a reboot is due) wakes it here.
    start = ticks_ms()
    await wait_idle(app.link, _LINK_DRAIN_MS)
    now = app.now()
    await leave(app.link, None if now is None else now + ms // 1000)
    app.asleep = True
    on_time = False
    try:
        while True:
            left = ms - ticks_diff(ticks_ms(), start)
            if left <= 0:
                on_time = True
                return
            if app.power.state != "critical" or app.reboot_requested is not None:
                return
            app.checkin("sampler")
            front = app.front
            if front is not None and front.ui.awake_on:
                await runtime.sleep_ms(min(left, 1000))  # lit for a vote: stay awake
                continue
            step = min(left, _DOZE_STEP_MS)
            if front is not None:
                front.woken = False
            await light_sleep(app, step)
    finally:
        app.asleep = False
        if not on_time:
            app.link.wake_up()


async def light_sleep(app, ms):
    # The ESP32 sleeps here with the CPU stopped and a touch as a wake source; the host's
    # virtual board records the request and the bench waits out the time on its clock,
    # the pad sampler standing in for the touch wake-up hardware.
    m = app.hw.machine
    if app.front is not None:  # a press must cross each pad's wake threshold
        levels = app.front.touch.wake_levels()
        for i in range(len(levels)):
            if levels[i] is not None:
                try:
                    app.front.pads[i].config(levels[i])
                except (ValueError, OSError):
                    pass
    if runtime.MICROPYTHON:
        try:
            app.hw.esp32.wake_on_touch(True)
        except (AttributeError, ValueError, OSError):
            pass
        m.lightsleep(ms)
        if app.front is not None:
            app.front.touch.sample()
        await runtime.sleep_ms(0)  # let the supervisor feed the watchdog between sleeps
        return
    m.lightsleep(ms)
    start = ticks_ms()
    while ticks_diff(ticks_ms(), start) < ms:
        if app.front is not None and app.front.woken:
            return
        await runtime.sleep_ms(250)


async def wait_idle(link, ms):
    # Until the records made so far are out and acknowledged by the broker, or ms pass.
    # A link that failed and waits to retry will not send them now: no reason to stay awake.
    start = runtime.real_ms()  # the broker answers in real time, however fast the clock
    while ticks_diff(runtime.real_ms(), start) < ms:
        if link.connected and link.app.clock_set and link.idle() and link.birth_acked:
            return True
        if link.backing_off and not link.connected:
            return False
        await runtime.real_sleep_ms(50)
    return False


async def leave(link, until):
    # Publish the retained `sleeping` Status and disconnect cleanly (the will stays unsent).
    link.leaving = True
    link.resume.clear()
    c = link.client
    if c is not None and link.connected:
        try:
            st = protocol.status_json(link.cfg["bench"], "sleeping", until=until)
            await c.publish(link.base + "status", st, retain=True, token="sleeping")
            start = runtime.real_ms()
            while c.inflight and c.error is None and ticks_diff(runtime.real_ms(), start) < 5000:
                await runtime.real_sleep_ms(20)
            await c.disconnect()
        except Exception as e:
            print("link: sleep:", repr(e))
    link.dozing = True
    link.leaving = False
    link.connected = False
    link.wake.set()
