"""Firmware footprint figures: spool bytes per telemetry record, days of telemetry per MiB,
and bytes on the wire per bench per day at 60-s windows (MQTT framing included), beside
Tasmota's default JSON telemetry (a 303-byte STATE and a 227-byte SENSOR every 300 s).

Measured with the firmware's own encoders on a typical bench-v1 window (five outlets, BME280).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

from bench import mqtt, protocol  # noqa: E402
from bench import spool as sp  # noqa: E402

TOPIC = "klupa/v1/novi-grad/novi-grad-02/"


def typical() -> dict[str, object]:
    return {
        "period": 60,
        "solar_mv": 18420,
        "solar_ma": 1105,
        "solar_mwh": 339,
        "batt_mv": 13210,
        "batt_ma": -412,
        "soc_cp": 7850,
        "rssi": -61,
        "clients": 3,
        "occ": 42,
        "touches": 5,
        "power": "normal",
        "heap": 41230,
        "env": (1850, 5520),
        "ports": [
            (1, True, True, 912, 76),
            (2, True, False, 0, 0),
            (3, True, False, 0, 0),
            (4, True, True, 1530, 128),
            (5, True, False, 0, 0),
        ],
    }


def main() -> int:
    body = protocol.pack_telemetry(typical())
    rec = sp.Record(sp.KIND_TELEMETRY, 3141592, 1234, 1795712460, 0, body)
    per_record = len(sp.encode(rec))
    per_day = 1440
    days = 1048576 / per_record / per_day
    payload = protocol.telemetry_json("novi-grad-02", 3141592, 1234, 1795712460, body)
    json.loads(payload)
    publish = len(mqtt.publish_packet(TOPIC + "telemetry", payload, qos=1, pid=1234))
    puback = 4
    receipt_payload = json.dumps({"v": 1, "boots": {"3141592": [[1, 1234]]}}, separators=(",", ":"))
    receipt = len(mqtt.publish_packet(TOPIC + "receipt", receipt_payload, qos=1, pid=7)) + puback
    pings = 1440 * 4  # keepalive 60 s: at most a PINGREQ+PINGRESP (2+2 bytes) every 30 s
    wire = per_day * (publish + puback + receipt) + pings
    tasmota_msgs = [("tele/bench/STATE", 303), ("tele/bench/SENSOR", 227)]
    tasmota = 288 * sum(len(mqtt.publish_packet(t, b"x" * n)) for t, n in tasmota_msgs)
    print(f"spool bytes per telemetry record (5 outlets, env): {per_record} (target <= 100)")
    print(f"days of 60-s telemetry per MiB of spool: {days:.1f} (target >= 7)")
    print(f"telemetry JSON payload: {len(payload)} B; PUBLISH packet {publish} B")
    print(
        f"wire bytes per bench per day at 60-s windows: {wire} ({wire / 1e6:.3f} MB, target <= 1 MB)"
    )
    print(f"Tasmota default (STATE 303 B + SENSOR 227 B per 300 s, QoS 0): {tasmota} B/day")
    print(f"ratio klupa / Tasmota: {wire / tasmota:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
