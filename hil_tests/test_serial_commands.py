"""Commands, safe mode and the watchdog on a bench reached only through its serial port and its
broker (fixture `serial_bench`): Commands published on the bench's `cmd` topic, acks read
from the gateway's store; failed boots made at the console (Ctrl-C stops the app, then
`machine.reset()` at the REPL, as `mpremote reset` does) before the boot became healthy; the
watchdog left unfed by an app stopped at the console."""

from __future__ import annotations

import json
import time
from typing import Any

SAFE_ONLY = "safe mode: only ping, reboot, set, ota"


def fail_boot(sb: Any, boot: int) -> Any:
    """Stop the app of ``boot`` at the console before it is healthy (60 s up), and reset the
    chip by software from the REPL: a boot that never became healthy. The next boot's event."""
    since = sb.mark()
    sb.console.interrupt()
    sb.console.repl("import machine; machine.reset()", prompt=False)
    return sb.boot_event(sb.online(since))


def test_serial_commands(serial_bench: Any) -> None:
    sb, system = serial_bench, serial_bench.system
    system.start_gateway()
    boot = sb.fresh_boot().boot

    def ack(op: str, args: dict[str, Any] | None = None, cid: str = "") -> tuple[bool, str]:
        a = sb.command(op, args, cid)
        assert a.boot >= boot, a
        return a.body["ok"], a.body["detail"]

    assert ack("ping") == (True, "")
    assert ack("set", {"cooldown": 12}) == (True, "")
    ok, detail = ack("set", {"cooldown": 12, "period": 5})  # period below 10: all refused
    assert not ok and "period" in detail, detail
    ok, detail = ack("set", {"colour": "red"})
    assert not ok and "colour" in detail, detail
    assert ack("port", {"n": 99, "on": True}) == (False, "no port n=99")
    assert ack("dance") == (False, "unknown op dance")
    ok, detail = ack("selftest")
    assert detail, "selftest gives its one-line result"
    # `reboot`: acknowledged, then the bench reboots (machine.reset(): reset cause `hard`).
    assert ack("reboot", cid="hil-reboot-once") == (True, "")
    after = sb.next_boot(boot)
    assert (after.seq, after.body["reset"], after.body["safe"]) == (1, "hard", False), after
    # The same command again (a re-delivery) is acknowledged again and not run: no reboot.
    assert ack("reboot", cid="hil-reboot-once") == (True, "")
    sb.wait_windows(after.boot, len(sb.windows(after.boot)) + 3)
    assert sb.last_boot() == after.boot
    assert len(sb.acks("hil-reboot-once")) == 2
    assert ack("set", {"cooldown": 10}) == (True, "")  # the default again (a real bench)


def test_serial_safe_mode(serial_bench: Any) -> None:
    sb, system = serial_bench, serial_bench.system
    system.start_gateway()
    first = sb.fresh_boot()
    sb.healthy(first)  # the count starts at 0, whatever the bench went through before
    boots = [fail_boot(sb, first.boot)]  # the healthy boot stopped: not a failure
    for _ in range(3):  # then three boots that never became healthy
        boots.append(fail_boot(sb, boots[-1].boot))
    assert [b.body["safe"] for b in boots] == [False, False, False, True], boots
    assert [b.body["reset"] for b in boots] == ["hard"] * 4, boots
    safe = boots[-1].boot
    sb.wait(
        lambda: any(
            e.boot == safe and e.body["type"] == "fault" and e.body["code"] == "unhealthy_boots"
            for e in system.records("event", sb.bench)
        ),
        60,
        "the unhealthy_boots fault of the safe boot",
    )
    # Safe mode answers ping, reboot, set and ota only; no telemetry windows.
    assert sb.command("ping").body["ok"]
    refused = sb.command("port", {"n": 1, "on": False}).body
    assert (refused["ok"], refused["detail"]) == (False, SAFE_ONLY)
    assert sb.windows(safe) == []
    # Someone mended the cause: `reboot` tries normal mode at once.
    answer = sb.command("reboot").body
    assert (answer["ok"], answer["detail"]) == (True, "normal mode tried")
    retry = sb.next_boot(safe)
    assert (retry.body["safe"], retry.body["reset"]) == (False, "hard"), retry
    # The retry runs normally and becomes healthy (60 s up): the count is back to 0, read
    # from the bench's flash over the REPL (as `mpremote cat :/state.json`).
    sb.healthy(retry)
    sb.console.interrupt()
    state = json.loads(sb.console.exec_raw("print(open('/state.json').read())"))
    assert (state["unhealthy"], state["pending"], state["safe"]) == (0, 0, False), state
    assert "trying" not in state, state
    sb.fresh_boot()  # the app runs again


def test_serial_watchdog(serial_bench: Any) -> None:
    sb, system = serial_bench, serial_bench.system
    system.start_gateway()
    boot = sb.fresh_boot()
    sb.wait_windows(boot.boot, 1)  # the app runs, its watchdog started
    since = sb.mark()
    stopped = time.monotonic()
    sb.console.interrupt()  # the app stops at the REPL; nothing feeds the watchdog
    after = sb.boot_event(sb.online(since, bench_s=240))
    took = (time.monotonic() - stopped) * sb.pace  # the bench's seconds
    assert after.body["reset"] == "wdt", after
    assert 100 <= took <= 200, f"the watchdog reset the bench {took:.0f} s after Ctrl-C"
    assert not after.body["safe"]
    sb.wait_windows(after.boot, 1)  # and the app runs again by itself
