"""Delivery under faults: everything a bench made arrives once, in the store, InfluxDB and the
portal, through a Wi-Fi outage, a SIGKILLed gateway, a power cut on the Pi and a down InfluxDB."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

BENCH = "mostar-01"
_SERIAL = "; its serial-only version is in test_serial_delivery.py"
NEEDS_PHYSICS = {
    "test_wifi_outage_six_hours": "a six-hour Wi-Fi outage at the bench (the virtual physics)",
    "test_gateway_sigkill_while_busy": "two busy benches (people, sun) of the simulator" + _SERIAL,
    "test_pi_power_cut_broker_and_gateway": "the simulator's bench at x300" + _SERIAL,
    "test_influxdb_down_for_an_hour": "the simulator's bench at x300" + _SERIAL,
}
LOCAL = ZoneInfo("Europe/Sarajevo")


def influx_count(system: Any, bench: str = BENCH) -> int:
    """Telemetry points of the bench in InfluxDB (one `power` point per telemetry)."""
    assert system.influx is not None
    count: int = system.influx.count(f"SELECT count(batt_soc) FROM power WHERE bench = '{bench}'")
    return count


def assert_complete(system: Any, hil: dict[str, Any], bench: str = BENCH) -> list[Any]:
    """Every boot's records are stored without a hole, each (boot, seq) once."""
    recs = system.records(bench=bench)
    keys = [(r.boot, r.seq) for r in recs]
    assert len(keys) == len(set(keys))
    assert hil["seq_gaps"](recs) == {}, "records lost"
    return recs


def assert_portal_days(system: Any, bench: str = BENCH) -> None:
    """The portal's daily sums equal those of the distinct telemetry in the gateway's store."""
    solar: dict[str, float] = defaultdict(float)
    touches: dict[str, int] = defaultdict(int)
    for r in system.records("telemetry", bench):
        day = datetime.fromtimestamp(r.ts, LOCAL).date().isoformat()
        solar[day] += r.body["solar"]["wh"]
        touches[day] += r.body["touch"]["n"]
    got = {
        d: (s, t)
        for d, s, t in system.portal.sql(
            "SELECT date, solar_wh, touches FROM bench_days WHERE bench = ?", bench
        )
    }
    assert set(got) == set(solar), (got, dict(solar))
    for day in solar:
        assert abs(got[day][0] - solar[day]) < 0.01 + 1e-6 * solar[day], (day, got[day], solar[day])
        assert got[day][1] == touches[day]


def test_wifi_outage_six_hours(system: Any, hil: dict[str, Any]) -> None:
    speed, ago, outage = 600.0, 7 * 3600.0, (1800.0, 6 * 3600.0)
    system.with_influx()
    system.start_gateway()
    launched = time.time()
    span = f"{outage[0]:g}:{outage[1]:g}"
    system.sim([BENCH], speed, ago, 0.0, "--catch-up", "--wifi-outage", span)
    system.settle([BENCH], ago / speed + 60)
    start = launched - ago  # the benches' simulated start (within a fraction of a second)
    out_from, out_to = start + outage[0], start + outage[0] + outage[1]
    back_real = launched + (outage[0] + outage[1]) / speed
    hil["wait_until"](
        lambda: influx_count(system) == len(system.records("telemetry", BENCH)),
        30,
        "InfluxDB to hold every stored telemetry",
    )
    recs = assert_complete(system, hil)
    tele = [r for r in recs if r.kind == "telemetry"]
    during = [r for r in tele if out_from + 60 <= r.ts <= out_to - 60]
    # One window a minute through the six hours; all of it arrived once the link was back.
    assert len(during) >= 6 * 60 - 10, len(during)
    received = dict(((b, s), t) for b, s, t in system_received(system))
    late = [received[(r.boot, r.seq)] for r in during]
    assert min(late) >= back_real - 2.0, "a record made in the outage arrived during it"
    assert influx_count(system) == len(tele)
    assert len(tele) >= (ago - 600) / 60 * 0.97


def system_received(system: Any) -> list[tuple[int, int, float]]:
    import sqlite3

    conn = sqlite3.connect(f"file:{system.store_path}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT boot, seq, received FROM messages WHERE bench = ? AND seq IS NOT NULL", (BENCH,)
        ).fetchall()
    finally:
        conn.close()


def test_gateway_sigkill_while_busy(system: Any, hil: dict[str, Any]) -> None:
    speed, ago = 300.0, 2 * 3600.0
    system.with_influx()
    system.with_portal()
    system.start_gateway()
    for n in (1, 2):
        system.bench_config(f"mostar-0{n}", period=20)
    system.sim(["mostar-01", "mostar-02"], speed, ago, 0.0, "--catch-up", "--people", "8")
    time.sleep(ago / speed / 3)
    stored = len(system.records())
    system.kill_gateway()
    time.sleep(4)  # 20 simulated minutes with no gateway
    system.start_gateway()
    system.settle(["mostar-01", "mostar-02"], ago / speed + 60)
    assert stored > 50
    for bench in ("mostar-01", "mostar-02"):
        stored_n = len(system.records("telemetry", bench))
        hil["wait_until"](
            lambda b=bench, n=stored_n: influx_count(system, b) == n,
            40,
            f"InfluxDB to hold all {stored_n} stored telemetry of {bench} "
            f"(has {influx_count(system, bench)})",
        )
        tele = [r for r in assert_complete(system, hil, bench) if r.kind == "telemetry"]
        # A loaded 2-core host stretches windows at ×300; losses show as seq holes above.
        assert len(tele) >= (ago - 600) / 20 * 0.7, len(tele)
        assert influx_count(system, bench) == len(tele)
        hil["wait_until"](
            lambda b=bench: _portal_matches(system, b), 40, f"the portal's days of {bench}"
        )
        assert_portal_days(system, bench)


def _portal_matches(system: Any, bench: str) -> bool:
    try:
        assert_portal_days(system, bench)
    except AssertionError:
        return False
    return True


def test_pi_power_cut_broker_and_gateway(system: Any, hil: dict[str, Any]) -> None:
    speed, ago = 300.0, 2 * 3600.0
    system.start_gateway()
    system.bench_config(BENCH, period=20, resend_s=120)
    system.sim([BENCH], speed, ago, 0.0, "--catch-up")
    time.sleep(ago / speed / 3)
    before = len(system.records())
    # The Pi loses power: Mosquitto dies without saving its queue, the gateway with it.
    system.kill_gateway()
    system.broker.kill()
    time.sleep(3)
    system.broker.start()
    system.start_gateway()
    system.settle([BENCH], ago / speed + 60)
    assert before > 50
    tele = [r for r in assert_complete(system, hil) if r.kind == "telemetry"]
    assert len(tele) >= (ago - 600) / 20 * 0.7, len(tele)


def test_influxdb_down_for_an_hour(system: Any, hil: dict[str, Any]) -> None:
    speed, ago = 300.0, 2 * 3600.0
    influx = system.with_influx()
    system.start_gateway()
    system.sim([BENCH], speed, ago, 0.0, "--catch-up")
    time.sleep(ago / speed / 3)
    influx.stop()
    down_at = len(system.records("telemetry"))
    time.sleep(3600 / speed)  # a simulated hour
    missed = len(system.records("telemetry")) - down_at
    influx.start()
    system.settle([BENCH], ago / speed + 60)
    assert missed >= 40, "the bench kept publishing to the gateway while InfluxDB was down"
    hil["wait_until"](
        lambda: influx_count(system) == len(system.records("telemetry")),
        60,
        "InfluxDB to catch up",
    )
    tele = [r for r in assert_complete(system, hil) if r.kind == "telemetry"]
    assert influx_count(system) == len(tele) >= (ago - 600) / 60 * 0.8
