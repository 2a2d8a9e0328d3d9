"""Resets on EN at random moments, on a bench reached only through its serial port and its
broker (fixture `serial_bench`): a real chip stops wherever it is, in a spool write too, as in
a power cut; the virtual bench stops at the app's next await (the physics-driven
`test_power_cut.py` SIGKILLs its process, so mid-write, and cuts Wi-Fi). After each
reset the bench boots again from seq 1 with its `boot` event (`reset: power_on`, which safe
mode forgives), and every record of every boot arrives once, without a hole."""

from __future__ import annotations

import random
import time
from typing import Any

RESETS = 4


def test_serial_resets_on_en_lose_nothing(serial_bench: Any, hil: dict[str, Any]) -> None:
    sb, system = serial_bench, serial_bench.system
    rng = random.Random(19)
    system.start_gateway()
    boots = [sb.fresh_boot()]
    for _ in range(RESETS):
        sb.wait_windows(boots[-1].boot, 1)
        time.sleep(rng.uniform(0.2, 2.0) * sb.period() / sb.pace)  # anywhere in a window
        since = sb.mark()
        sb.console.hard_reset()
        boots.append(sb.boot_event(sb.online(since)))
    last = boots[-1].boot
    numbers = [b.boot for b in boots]
    assert numbers == sorted(set(numbers)), numbers
    assert [(b.seq, b.body["reset"], b.body["safe"]) for b in boots] == [
        (1, "power_on", False)
    ] * len(boots), boots

    def whole() -> bool:
        recs = [r for r in system.records(bench=sb.bench) if r.boot in numbers]
        firsts = {r.boot for r in recs if r.seq == 1}
        return firsts == set(numbers) and not hil["seq_gaps"](recs) and len(sb.windows(last)) >= 2

    # What the broker had acknowledged before a reset and no Receipt covered, the bench sends
    # again after `resend_s` (the virtual bench: 120 s; a real one as provisioned).
    resend_s = 120 if sb.virtual is not None else 900
    sb.wait(whole, resend_s + 120, "every boot's records, whole")
    recs = [r for r in system.records(bench=sb.bench) if r.boot in numbers]
    assert len({(r.boot, r.seq) for r in recs}) == len(recs)
    assert all(len(sb.windows(n)) >= 1 for n in numbers[:-1])
