"""Delivery under faults on the Pi's side, with a bench reached only through its serial port and
its broker (fixture `serial_bench`: a real bench with --port/--broker, else a virtual one in a
process of its own on a pseudo-terminal). The bench is reset on EN at the start, so its new
boot's records are all there is to follow: every one stored once, from seq 1, no hole, through
a SIGKILLed gateway, a power cut on the Pi (broker and gateway), and a stopped InfluxDB."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Europe/Sarajevo")


def assert_whole_boot(sb: Any, hil: dict[str, Any], boot: int) -> list[Any]:
    """The boot's records: each (boot, seq) once, from its `boot` event at seq 1, no hole."""
    recs = [r for r in sb.system.records(bench=sb.bench) if r.boot == boot]
    assert len({r.seq for r in recs}) == len(recs)
    assert (recs[0].seq, recs[0].kind, recs[0].body.get("type")) == (1, "event", "boot")
    assert hil["seq_gaps"](recs) == {}, hil["seq_gaps"](recs)
    return recs


def assert_forwarded(sb: Any, hil: dict[str, Any], portal: bool = False) -> None:
    """InfluxDB holds one point per stored telemetry, and the portal's daily sums are those of
    the stored telemetry. The bench goes on publishing, so both are judged up to a moment: the
    telemetry stored by now (ts up to T) must all be forwarded, and nothing beyond the store."""
    system = sb.system
    upto = max(r.ts for r in system.records("telemetry", sb.bench))

    def stored() -> list[Any]:
        return [r for r in system.records("telemetry", sb.bench) if r.ts <= upto]

    def influx() -> int:
        q = f"SELECT count(batt_soc) FROM power WHERE bench = '{sb.bench}' AND time <= {upto}s"
        n: int = system.influx.count(q)
        return n

    hil["wait_until"](
        lambda: influx() == len(stored()), 60, "InfluxDB to hold every stored telemetry"
    )
    if portal:
        hil["wait_until"](
            lambda: portal_days_between(sb, upto), 60, "the portal's days to hold the telemetry"
        )
        assert portal_days_between(sb, upto)


def day_sums(recs: list[Any]) -> dict[str, tuple[float, int]]:
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for r in recs:
        day = datetime.fromtimestamp(r.ts, LOCAL).date().isoformat()
        out[day][0] += r.body["solar"]["wh"]
        out[day][1] += r.body["touch"]["n"]
    return {d: (v[0], int(v[1])) for d, v in out.items()}


def portal_days_between(sb: Any, upto: int) -> bool:
    """Each of the portal's `bench_days` lies between the sums of the telemetry stored up to
    ``upto`` (all forwarded by now) and the sums of everything stored (read after it)."""
    got = {
        d: (s, t)
        for d, s, t in sb.system.portal.sql(
            "SELECT date, solar_wh, touches FROM bench_days WHERE bench = ?", sb.bench
        )
    }
    recs = sb.system.records("telemetry", sb.bench)
    low, high = day_sums([r for r in recs if r.ts <= upto]), day_sums(recs)
    if not set(low) <= set(got) <= set(high):
        return False
    return all(
        low.get(d, (0.0, 0))[0] - 0.01 <= got[d][0] <= high[d][0] + 0.01
        and low.get(d, (0.0, 0))[1] <= got[d][1] <= high[d][1]
        for d in got
    )


def no_hole(sb: Any, hil: dict[str, Any], boot: int, windows: int) -> bool:
    recs = [r for r in sb.system.records(bench=sb.bench) if r.boot == boot]
    return len(sb.windows(boot)) >= windows and not hil["seq_gaps"](recs)


def test_serial_gateway_sigkill(serial_bench: Any, hil: dict[str, Any]) -> None:
    sb, system = serial_bench, serial_bench.system
    system.with_influx()
    system.with_portal()
    system.start_gateway()
    boot = sb.fresh_boot().boot
    stored = len(sb.wait_windows(boot, 3))
    system.kill_gateway()
    time.sleep(3 * sb.period() / sb.pace)  # three windows made with no gateway
    system.start_gateway()
    sb.wait(
        lambda: no_hole(sb, hil, boot, stored + 5),
        8 * sb.period() + 60,
        "the windows made while the gateway was down, and more",
    )
    assert_whole_boot(sb, hil, boot)
    assert_forwarded(sb, hil, portal=True)


def test_serial_pi_power_cut(serial_bench: Any, hil: dict[str, Any]) -> None:
    sb, system = serial_bench, serial_bench.system
    system.start_gateway()
    boot = sb.fresh_boot().boot
    stored = len(sb.wait_windows(boot, 3))
    # The Pi loses power: Mosquitto dies without saving its queue, the gateway with it.
    system.kill_gateway()
    system.broker.kill()
    time.sleep(2 * sb.period() / sb.pace)
    system.broker.start()
    system.start_gateway()
    # What the broker had acknowledged and lost, the bench sends again when no Receipt covers
    # it after `resend_s` (the virtual bench: 120 s; a real one as provisioned, 900 s default).
    resend_s = 120 if sb.virtual is not None else 900
    sb.wait(
        lambda: no_hole(sb, hil, boot, stored + 3),
        resend_s + 6 * sb.period() + 60,
        "every record of the boot, the lost ones re-sent",
    )
    assert_whole_boot(sb, hil, boot)


def test_serial_influxdb_down(serial_bench: Any, hil: dict[str, Any]) -> None:
    sb, system = serial_bench, serial_bench.system
    influx = system.with_influx()
    system.start_gateway()
    boot = sb.fresh_boot().boot
    sb.wait_windows(boot, 2)
    influx.stop()
    down = len(sb.windows(boot))
    sb.wait_windows(boot, down + 4)  # the bench kept delivering to the gateway
    influx.start()
    assert_whole_boot(sb, hil, boot)
    assert_forwarded(sb, hil)
