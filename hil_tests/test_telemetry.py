"""Boot → birth → telemetry with physically plausible values, at night and in daylight."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from boards.virtual.bench import load_profile
from boards.virtual.physics import interpolate

NEEDS_PHYSICS = (
    "a known sun: a night and a day span at the bench's coordinates (the virtual physics)"
)
SPEED = 400.0
SPAN = 2 * 3600.0


class Watch:
    """Every Status a bench publishes (the birth is the first, retained, online one)."""

    def __init__(self, port: int, topic: str) -> None:
        self.seen: list[tuple[str, dict[str, Any], bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.payload:
            with self.lock:
                self.seen.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_boot_birth_and_plausible_telemetry(system: Any, hil: dict[str, Any]) -> None:
    night_ago = hil["window"]("mostar", SPAN, want_day=False)
    day_ago = hil["window"]("mostar", SPAN, want_day=True)
    watch = Watch(system.broker.port, "klupa/v1/mostar/+/status")
    system.start_gateway()
    try:
        night = system.sim(["mostar-01"], SPEED, night_ago, SPAN)
        day = system.sim(["mostar-02"], SPEED, day_ago, SPAN)
        for proc in (night, day):
            assert proc.wait(SPAN / SPEED + 60) == 0, system.sim_log()[-2000:]
        hil["wait_until"](
            lambda: len(system.records("telemetry", "mostar-02")) >= 100,
            30,
            "the day bench's telemetry in the store",
        )
    finally:
        watch.close()

    for bench in ("mostar-01", "mostar-02"):
        recs = system.records(bench=bench)
        # Boot: the first record of the boot is the `boot` event.
        assert recs[0].kind == "event" and recs[0].body["type"] == "boot", recs[0]
        assert recs[0].body["reset"] == "power_on"
        # Birth: a retained online Status before the bench's first telemetry arrived.
        births = [
            b for t, b, _ in watch.seen if t.endswith(f"/{bench}/status") and b["state"] == "online"
        ]
        assert births, f"no online Status from {bench}"
        assert births[0]["boot"] == recs[0].boot
        assert hil["seq_gaps"](recs) == {}

    tele = {b: [r.body for r in system.records("telemetry", b)] for b in ("mostar-01", "mostar-02")}
    (system.workdir / "telemetry.json").write_text(json.dumps(tele))
    for bench, rows in tele.items():
        # A two-hour span of one-minute windows (the first minutes go to boot and NTP).
        assert 100 <= len(rows) <= 121, (bench, len(rows))
        for t in rows:
            assert 10.0 < t["batt"]["v"] < 14.6, t
            assert 0.0 <= t["batt"]["soc"] <= 100.0

    night_rows = tele["mostar-01"]
    assert all(t["solar"]["a"] == 0.0 and t["solar"]["wh"] == 0.0 for t in night_rows)
    assert all(t["batt"]["a"] < 0 for t in night_rows), "the battery only discharges at night"
    day_rows = tele["mostar-02"]
    lit = [t for t in day_rows if t["solar"]["a"] > 0.05]
    assert len(lit) >= 0.9 * len(day_rows), f"{len(lit)} of {len(day_rows)} windows with sun"
    assert sum(t["solar"]["wh"] for t in day_rows) > 2.0
    assert all(10.0 < t["solar"]["v"] < 23.0 for t in lit)

    # SoC follows the estimator of docs/protocol.md, window by window: the battery's net charge
    # (charging at the profile's efficiency), and at rest (|current| < 0.2 A) a pull with a
    # 30-minute constant toward the span of SoC the open-circuit-voltage curve gives for the
    # voltage +- its band (docs/firmware.md, "State of charge"); under a charge current (above
    # the estimator's 20 mA deadband) the voltage reads above the OCV, so it only pulls the
    # count down; counting up stops at 99 % (a day bench near noon gets there). The few
    # exceptions are windows whose average current crosses the rest line while its samples did
    # not, the first minutes of a rest (not yet at rest for the estimator), and a full-charge
    # reset.
    battery = load_profile("bench-v1")["battery"]
    curve = [(float(v), float(soc)) for soc, v in battery["ocv"]]
    band = battery.get("ocv_band_v", 0.06)
    for bench, rows in tele.items():
        fits = agree = significant = 0
        for prev, t in zip(rows, rows[1:], strict=False):
            d_soc = t["batt"]["soc"] - prev["batt"]["soc"]
            # Over the window's real length (a loaded host stretches windows a little).
            span = max(1, t["ts"] - prev["ts"])
            amps = t["batt"]["a"]
            eff = battery["charge_efficiency"] if amps > 0 else 1.0
            expected = 100.0 * amps * eff * span / 3600.0 / battery["capacity_ah"]
            if amps > 0:  # counting alone stops at 99 %: 100 % is the full-charge reset's
                expected = min(expected, max(0.0, 99.0 - prev["batt"]["soc"]))
            if abs(amps) < 0.2:
                low = interpolate(curve, t["batt"]["v"] - band)
                high = interpolate(curve, t["batt"]["v"] + band)
                floor = low if amps <= 0.02 else 0.0  # charging: no pull up
                at_rest = min(high, max(floor, prev["batt"]["soc"]))
                expected += (at_rest - prev["batt"]["soc"]) * span / 1800.0
            fits += abs(d_soc - expected) <= 0.015 + 0.25 * abs(expected)
            if abs(expected) >= 0.02:
                significant += 1
                agree += (d_soc > 0) == (expected > 0) and d_soc != 0
        assert fits >= 0.9 * (len(rows) - 1), (bench, fits, len(rows))
        assert agree >= 0.85 * significant, (bench, agree, significant)
    assert night_rows[-1]["batt"]["soc"] < night_rows[0]["batt"]["soc"]
