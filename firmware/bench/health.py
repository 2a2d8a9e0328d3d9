# Safe mode's bookkeeping in /state.json (docs/protocol.md, "Bench health, safe mode and app
# updates"). A boot is counted before the app is imported (main.prepare), so a crash at
# import counts; it stops counting once the app's own tasks make it healthy.
# Keys: unhealthy (consecutive normal boots never healthy), pending (this boot is counted
# and not healthy yet), safe (this boot's mode), trying (this normal boot is safe mode's
# retry), wait (s before safe mode's next retry), safe_s (s spent in safe mode since).
# Imported for one step (runtime.job, or by main.prepare) and dropped: not resident, except
# in safe mode, whose sampler runs from here.
from bench import runtime, store
from bench.runtime import ticks_diff, ticks_ms

LIMIT = 3  # boots that never became healthy before safe mode
FIRST_WAIT_S = 3600
MAX_WAIT_S = 86400


def count(st, power_lost, rolled_back):
    # A new boot. power_lost: the last one ended by losing power (reset cause power_on), which
    # is no fault of the app's; rolled_back: it was an app on trial, now rolled back, whose
    # failure is not the running app's. -> True when this boot is to run in safe mode.
    n = st.get("unhealthy", 0)
    if st.get("pending"):
        if power_lost or rolled_back:
            n -= 1
        else:
            st.pop("trying", None)  # safe mode's retry failed: back to safe mode
    safe = n >= LIMIT and not st.get("trying")
    if not safe:
        n += 1
    st["unhealthy"] = n
    st["pending"] = 0 if safe else 1
    st["safe"] = safe
    return safe


def healthy(st):
    st["unhealthy"] = 0
    st["pending"] = 0
    for k in ("trying", "wait", "safe_s"):
        st.pop(k, None)


def safe_time(st, s):
    # s more seconds in safe mode. -> True when it is time to try normal mode again (the
    # caller reboots); the wait after that one is twice as long, at most a day.
    wait = st.get("wait", FIRST_WAIT_S)
    spent = st.get("safe_s", 0) + s
    if spent < wait:
        st["safe_s"] = spent
        return False
    st["safe_s"] = 0
    st["wait"] = min(wait * 2, MAX_WAIT_S)
    st["trying"] = 1
    return True


def boot(root, cause, ota):
    # main.prepare's step: count this boot in <root>/state.json. cause: machine.reset_cause().
    path = root + "/state.json"
    st = store.load(path, {})
    if ota == "switched":  # a new app (often the fix sent to a bench in safe mode): try it
        st["trying"] = 1
    safe = count(st, cause == 1, ota == "rolled_back")  # 1: machine.PWRON_RESET
    store.save(path, st)
    return safe


async def sampler(app):
    # Safe mode's sampler: the power manager and the ports' protection, nothing else. Started
    # through runtime.job: the running coroutine holds this module while safe mode lasts.
    last = ticks_ms()
    while True:
        app.checkin("power")
        await runtime.sleep_ms(app.cfg["sample_s"] * 1000)
        now = ticks_ms()
        app.read_battery(ticks_diff(now, last))
        last = now
        for n, _, addr, ch in app.ports:
            app.read_port(n, addr, ch)
