"""What any bench publishes, observed at its broker: the one scenario that runs unchanged on a
real bench (`pytest hil_tests --port /dev/ttyUSB0 --broker HOST:PORT`), since it only
listens. Against virtual benches it runs one through `klupa sim` on a local Mosquitto.

Every message the bench sends is checked against docs/protocol.md with the gateway's own
validator; its retained birth is `online` with boot and firmware; its telemetry windows come
in sequence, one per period, and a re-sent record is byte for byte the first one.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edge_gateway.protocol import Status, Telemetry, parse_topic, validate
from klupa.services import stop_process

SPEED = 60.0


class Listener:
    """Every bench message on the broker (`klupa/v1/+/+/#`), with the time it arrived."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="klupa-hil-observer")
        self.client.on_message = self.on_message
        self.client.connect(host, port)
        self.client.subscribe("klupa/v1/+/+/#", qos=1)
        self.client.loop_start()

    def on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def of(self, kind: str) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return [m for m in self.messages if m[0].endswith("/" + kind)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def observed(
    request: pytest.FixtureRequest, real_bench: str | None, tmp_path: Path
) -> Iterator[tuple[Listener, float]]:
    """A listener on the bench's broker, and the seconds to wait for three windows."""
    if real_bench:
        target = request.config.getoption("--broker")
        if not target:
            pytest.fail("--port names a real bench: give its broker too, --broker HOST:PORT")
        host, port = target.rsplit(":", 1)
        listener = Listener(host, int(port))
        yield listener, 4 * 3600 / 60 + 240  # real time: up to three windows of the saver state
        listener.close()
        return
    broker = request.getfixturevalue("mosquitto")
    listener = Listener(broker.host, broker.port)
    with (tmp_path / "sim.log").open("ab") as log:
        sim = subprocess.Popen(
            [sys.executable, "-m", "klupa.cli", "sim", "--benches", "mostar-01"]
            + ["--broker", f"{broker.host}:{broker.port}", "--speed", str(SPEED)]
            + ["--start-ago", "1800", "--flash", str(tmp_path / "flash")],
            stdout=log,
            stderr=log,
        )
    try:
        yield listener, 1800 / SPEED + 60
    finally:
        stop_process(sim)
        listener.close()


def test_bench_publishes_what_the_protocol_says(observed: tuple[Listener, float]) -> None:
    listener, wait_s = observed
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and len(listener.of("telemetry")) < 4:
        time.sleep(0.5)
    bench_kinds = ("/telemetry", "/event", "/vote", "/status", "/cmd/ack")
    messages = [m for m in list(listener.messages) if m[0].endswith(bench_kinds)]
    tele_msgs = listener.of("telemetry")
    assert len(tele_msgs) >= 4, f"{len(tele_msgs)} telemetry messages in {wait_s:.0f} s"

    # Everything valid by docs/protocol.md, judged as the gateway judges it, at arrival.
    now = time.time()
    typed = [(topic, validate(topic, payload, now), payload) for topic, payload, _ in messages]
    bench = parse_topic(tele_msgs[0][0])[1]
    births = [
        (m, retain)
        for (t, m, _), (_, _, retain) in zip(typed, messages, strict=True)
        if isinstance(m, Status) and m.state == "online" and parse_topic(t)[1] == bench
    ]
    assert births, "no online Status from the bench"
    birth = births[-1][0]
    assert birth.boot is not None and birth.fw, birth

    # Telemetry of the current boot: in sequence, one window per period; a re-sent record is
    # the same bytes as the first time it was sent.
    first_payload: dict[tuple[int, int], bytes] = {}
    windows: dict[int, Telemetry] = {}
    for topic, msg, payload in typed:
        if isinstance(msg, Telemetry) and parse_topic(topic)[1] == bench:
            key = (int(msg.boot), int(msg.seq))
            assert first_payload.setdefault(key, payload) == payload, f"{key} re-sent changed"
            if int(msg.boot) == int(birth.boot):
                windows[int(msg.seq)] = msg
    seqs = sorted(windows)
    assert len(seqs) >= 3, seqs
    ts = [windows[s].ts for s in seqs]
    assert ts == sorted(ts), "telemetry of one boot out of time order"
    # One window per period. Windows close on a fixed grid and a record is stamped when its
    # window closes, so a late wake-up makes one gap short by its lateness (and the next long):
    # at ×60 a quarter of a real second is 15 s of the bench's. Never two windows closer than
    # the period less that, and over the run the grid holds.
    late_s = 2 + 0.25 * SPEED
    for a, b in zip(seqs, seqs[1:], strict=False):
        gap = windows[b].ts - windows[a].ts
        assert gap >= windows[b].period - late_s, (a, b, gap, windows[b].period)
    span = sum(windows[s].period for s in seqs[1:])
    assert ts[-1] - ts[0] >= span - late_s, (ts, span)
    assert all(0 <= windows[s].batt.soc <= 100 for s in seqs)
