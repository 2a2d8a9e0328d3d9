"""A poll made in the portal reaches a bench reached only through its serial port and its broker
(fixture `serial_bench`): the gateway's poll sync publishes it retained, the bench keeps it in
its flash, read over the REPL as `mpremote cat :/poll.json` reads it.

The votes half of `test_poll.py` stays there: a vote needs someone pressing a pad. The
firmware offers no press over the console on purpose: a vote a USB cable could make is a vote
nobody made, one configuration flag away from a real poll (docs/hil.md)."""

from __future__ import annotations

import json
import time
from typing import Any


def retained_poll(system: Any, poll_id: str, hil: dict[str, Any]) -> None:
    """Wait until the broker holds the gateway's retained Poll with ``poll_id``."""
    import paho.mqtt.client as mqtt

    seen: list[str | None] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="klupa-hil-poll")
    client.on_message = lambda c, u, m: seen.append(json.loads(m.payload).get("id"))
    client.connect(system.broker.host, system.broker.port)
    client.subscribe(f"klupa/v1/{system.m}/poll", qos=1)
    client.loop_start()
    try:
        hil["wait_until"](lambda: poll_id in seen, 60, "the gateway's retained poll")
    finally:
        client.loop_stop()
        client.disconnect()


def test_serial_poll_reaches_the_bench(serial_bench: Any, hil: dict[str, Any]) -> None:
    sb, system = serial_bench, serial_bench.system
    portal = system.with_portal()
    now = int(time.time())
    poll_id = f"{system.m}-hil-serial-{now}"
    poll = hil["yes_no_poll"](poll_id, now, system.m)
    portal.post("/api/v1/polls", poll)
    system.start_gateway()
    retained_poll(system, poll_id, hil)  # published by the gateway before the bench boots
    boot = sb.fresh_boot().boot
    sb.wait_windows(boot, 2)  # connected and subscribed: the retained poll came with it
    sb.console.interrupt()
    kept = json.loads(sb.console.exec_raw("print(open('/poll.json').read())"))
    assert kept["id"] == poll_id, kept
    assert (kept["opens"], kept["closes"]) == (poll["opens"], poll["closes"])
    assert [o["id"] for o in kept["options"]] == ["yes", "no"]
    assert kept["question"]["bs"] == poll["question"]["bs"]
    after = sb.fresh_boot()  # the app runs again, the poll still in its flash
    assert after.boot > boot
