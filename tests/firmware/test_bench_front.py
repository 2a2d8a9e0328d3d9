"""The bench's front on the virtual board with a real Mosquitto: the retained poll on the
virtual display, pad presses becoming Votes (docs/protocol.md, checked with the gateway's own
validator), cooldown and hourly cap, votes made during a broker outage, invalid polls, the
`selftest` command and provisioning's `selftest.on_board()`, and the `critical` state's sleep.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from bench.screens import Screens
from drivers.ssd1306 import SSD1306

from boards.virtual.bench import VirtualBench, load_profile
from boards.virtual.clock import VirtualClock
from boards.virtual.display import SSD1306Model, load_png_pixels
from edge_gateway.protocol import validate

NOW = int(time.time())
POLL = {
    "v": 1,
    "id": "mostar-2026-park",
    "opens": NOW - 30 * 86400,
    "closes": NOW + 30 * 86400,
    "question": {"bs": "Više klupa u parku?", "en": "More benches in the park?"},
    "options": [
        {"id": "da", "label": {"bs": "Da", "en": "Yes"}},
        {"id": "ne", "label": {"bs": "Ne", "en": "No"}},
    ],
}
TOPIC_POLL = "klupa/v1/mostar/poll"


class Bus:
    """machine.I2C's writeto for a lone SSD1306 model: renders the expected picture."""

    def __init__(self, model: SSD1306Model) -> None:
        self.model = model

    def writeto(self, addr: int, buf: bytes) -> None:
        self.model.write(buf[0], bytes(buf[1:]))


def expected(draw: Any) -> list[list[bool]]:
    model = SSD1306Model()
    screens = Screens(SSD1306(Bus(model), 0x3C))
    draw(screens)
    return model.pixels()


def publish_poll(broker: Any, poll: dict[str, Any]) -> None:
    """``poll`` published retained on the municipality's poll topic, as the portal does."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="poll-publisher")
    c.connect(broker.host, broker.port, 10)
    c.loop_start()
    c.publish(TOPIC_POLL, json.dumps(poll).encode(), 1, True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


@pytest.fixture
def gw(mosquitto: Any, gateway: Any) -> Any:
    """The stand-in gateway, opened once the broker holds POLL (retained)."""
    publish_poll(mosquitto, POLL)
    return gateway()


def make_bench(
    tmp: Path, port: int, kit: dict[str, Any], speed: float = 10.0, **cfg: Any
) -> VirtualBench:
    clock = VirtualClock(start=time.time() - 6 * 3600, speed=speed)
    vb = VirtualBench(tmp / "flash", "bench-v1", kit["bench_config"](port, **cfg), clock)
    vb.board.set_solar(18.42, 1.105)
    vb.board.set_battery(13.21, -0.412)
    return vb


async def press(vb: VirtualBench, pad: int, hold_ms: int = 800) -> None:
    """A finger on pad `pad` (0-based) for `hold_ms` of the bench's time."""
    pin = vb.profile["touch"]["pins"][pad]
    vb.board.touch[pin] = 360  # 40 % below the 600 baseline: past the 15 % sensitivity
    await vb.clock.sleep_ms(hold_ms)
    vb.board.touch[pin] = 600


def do(runner: Any, vb: VirtualBench, steps: list[tuple[str, int]]) -> list[Any]:
    """Run presses and pauses in the bench's loop, on its clock: ("press", pad), ("wait", ms),
    and ("snap", 0), which takes (UI mode, display lit, pixels) at that moment (a transient
    screen lasts 3 s of the bench's time, too short to catch reliably from the test thread)."""

    async def go() -> list[Any]:
        snaps = []
        for what, n in steps:
            if what == "press":
                await press(vb, n)
            elif what == "snap":
                d = vb.board.display
                snaps.append((vb.app.front.ui.mode, d.lit, d.pixels()))
            else:
                await vb.clock.sleep_ms(n)
        return snaps

    return asyncio.run_coroutine_threadsafe(go(), runner.loop).result(60)


def ready(vb: VirtualBench) -> bool:
    app = vb.app
    return bool(
        app is not None and app.front is not None and app.link is not None and app.link.birth_acked
    )


def vote_messages(gw: Any) -> list[tuple[str, bytes]]:
    with gw.lock:
        return [(t, raw) for t, _, raw, _ in gw.messages if t.endswith("/vote")]


def test_retained_poll_appears_on_the_virtual_display(
    mosquitto, bench_runner, firmware_kit, tmp_path
):
    kit = firmware_kit
    publish_poll(mosquitto, POLL)
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit))
    kit["wait_until"](lambda: ready(vb), what="bench up")
    kit["wait_until"](
        lambda: vb.app.front.voting.poll is not None and vb.app.front.ui.mode == "poll",
        what="the poll screen",
    )
    want = expected(lambda s: s.poll(POLL, "bs", 0))
    assert bench_runner.call(lambda: vb.board.display.pixels()) == want
    shot = bench_runner.call(lambda: vb.screenshot(tmp_path / "poll.png"))
    assert load_png_pixels(shot) == want
    assert any(any(row) for row in want)  # the picture is not blank
    # the poll is kept in the bench's flash for the next boot
    assert json.loads((tmp_path / "flash" / "poll.json").read_bytes())["id"] == POLL["id"]


def test_presses_become_valid_votes_with_cooldown_and_cap(
    mosquitto, bench_runner, gw, firmware_kit, tmp_path
):
    kit = firmware_kit
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit, cooldown=5, vote_cap=3))
    kit["wait_until"](lambda: ready(vb) and vb.app.front.ui.mode == "poll", what="poll")
    (snap,) = do(bench_runner, vb, [("wait", 500), ("press", 0), ("wait", 300), ("snap", 0)])
    assert snap[0] == "confirm"
    assert snap[2] == expected(lambda s: s.confirmation(POLL, 0, "bs"))
    # 1 s later: inside the 3 s confirmation + 5 s cooldown, a touch and no vote
    do(bench_runner, vb, [("wait", 200), ("press", 1)])
    do(bench_runner, vb, [("wait", 9000), ("press", 1)])  # a vote
    do(bench_runner, vb, [("wait", 9000), ("press", 0)])  # a vote: the third this hour
    # over the cap of 3: "try again later", and no vote
    (snap,) = do(bench_runner, vb, [("wait", 9000), ("press", 1), ("wait", 300), ("snap", 0)])
    assert snap[0] == "later"
    assert snap[2] == expected(lambda s: s.try_later(POLL, "bs"))
    kit["wait_until"](lambda: len(vote_messages(gw)) >= 3, what="three votes")
    time.sleep(0.5)
    msgs = vote_messages(gw)
    assert len({json.loads(raw)["seq"] for _, raw in msgs}) == 3
    votes = {}
    for topic, raw in msgs:
        v = validate(topic, raw, time.time())
        votes[(v.boot, v.seq)] = v  # a re-send repeats (boot, seq): counted once
    votes = list(votes.values())
    assert [v.choice for v in sorted(votes, key=lambda v: v.seq)] == ["da", "ne", "da"]
    assert all(v.poll == POLL["id"] and v.bench == "mostar-01" for v in votes)
    assert all(POLL["opens"] <= v.ts < POLL["closes"] for v in votes)
    # every press counted in telemetry touch.n, votes or not
    kit["wait_until"](lambda: sum(t["touch"]["n"] for t in gw.of("telemetry")) >= 5, what="touch.n")


def test_outer_pads_held_5_s_show_the_service_screen_for_60_s(
    mosquitto, bench_runner, gw, firmware_kit, tmp_path
):
    from bench import service

    kit = firmware_kit
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit))
    pins = vb.profile["touch"]["pins"]
    outer = (pins[0], pins[-1])

    async def chord() -> list[Any]:
        snaps = []

        def snap() -> None:
            d = vb.board.display
            snaps.append((vb.app.front.ui.mode, d.pixels(), vb.app.front.service_info()))

        for pin in outer:
            vb.board.touch[pin] = 360
        await vb.clock.sleep_ms(4000)
        snap()  # 4 s: not yet
        await vb.clock.sleep_ms(1500)
        snap()  # 5.5 s: the service screen
        for pin in outer:
            vb.board.touch[pin] = 600
        await vb.clock.sleep_ms(50000)
        snap()  # still there 50 s after it appeared
        await vb.clock.sleep_ms(12000)
        snap()  # gone 60 s after it appeared
        return snaps

    kit["wait_until"](lambda: ready(vb) and vb.app.front.ui.mode == "poll", what="poll")
    before, shown, later, after = asyncio.run_coroutine_threadsafe(
        chord(), bench_runner.loop
    ).result(60)
    assert before[0] == "poll"
    mode, pixels, info = shown
    assert mode == "service"
    assert info["bench"] == "mostar-01" and info["fw"] == vb.app.fw
    assert info["boot"] == vb.app.boot_no and info["broker"] is True
    assert isinstance(info["spool"], int) and info["fault"] is None
    assert pixels == expected(lambda s: service.draw(s, info, "bs"))
    assert service.lines(info, "bs")[2] == "Broker: spojen"
    assert later[0] == "service" and later[1] == pixels
    assert after[0] == "poll"
    assert after[1] == expected(lambda s: s.poll(POLL, "bs", 0))
    time.sleep(1.0)
    assert vote_messages(gw) == []  # the gesture is never a vote


def test_vote_made_during_a_broker_outage_arrives_after_it(
    mosquitto, bench_runner, gw, gateway, firmware_kit, tmp_path
):
    kit = firmware_kit
    # resend_s short: the bench may publish the vote before the new gateway has subscribed
    # after the restart; the unreceipted vote is then sent again, as in the field
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit, resend_s=30))
    kit["wait_until"](lambda: ready(vb) and vb.app.front.ui.mode == "poll", what="poll")
    gw.close()
    mosquitto.stop()
    kit["wait_until"](lambda: not vb.app.link.connected, what="link down")
    (snap,) = do(bench_runner, vb, [("press", 1), ("wait", 300), ("snap", 0)])
    assert snap[0] == "confirm"  # the vote was taken
    assert vote_messages(gw) == []
    mosquitto.start()
    gw = gateway()
    kit["wait_until"](lambda: vote_messages(gw), timeout=45, what="the vote after the outage")
    topic, raw = vote_messages(gw)[0]
    v = validate(topic, raw, time.time())
    assert v.choice == "ne" and v.poll == POLL["id"]


def test_invalid_poll_is_a_fault_and_the_previous_poll_stays(
    mosquitto, bench_runner, gw, firmware_kit, tmp_path
):
    kit = firmware_kit
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit))
    kit["wait_until"](lambda: ready(vb) and vb.app.front.voting.poll, what="poll")
    bad = dict(POLL, id="mostar-2026-bad", options=POLL["options"] * 3)  # 6 options
    publish_poll(mosquitto, bad)
    fault = kit["wait_until"](
        lambda: [e for e in gw.of("event") if e["type"] == "fault" and e["code"] == "poll_invalid"],
        what="poll_invalid fault",
    )[0]
    assert "options" in fault["detail"]
    assert vb.app.front.voting.poll["id"] == POLL["id"]
    assert json.loads((tmp_path / "flash" / "poll.json").read_bytes())["id"] == POLL["id"]
    assert bench_runner.call(lambda: vb.board.display.pixels()) == expected(
        lambda s: s.poll(POLL, "bs", 0)
    )


def test_selftest_command_answers_with_the_one_line_summary(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    kit = firmware_kit
    gw = gateway()
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit))
    kit["wait_until"](lambda: ready(vb), what="bench up")
    checks = 2 + 1 + len(vb.profile["ports"]) + 2  # INA226 x2, BME280, ports, pads, display
    gw.command("mostar-01", {"id": "c-st1", "op": "selftest"})
    ack = kit["wait_until"](lambda: [a for a in gw.of("cmd/ack") if a["id"] == "c-st1"])[0]
    assert ack["ok"] is True and ack["detail"] == f"OK {checks}/{checks} checks"
    assert all(vb.board.port_enabled(p["n"]) for p in vb.profile["ports"])  # restored
    # a BME280 that stops answering fails its check, by name
    env_addr = vb.profile["env"]["addr"]
    bench_runner.call(lambda: vb.board.bus.chips.pop(env_addr))
    gw.command("mostar-01", {"id": "c-st2", "op": "selftest"})
    ack = kit["wait_until"](lambda: [a for a in gw.of("cmd/ack") if a["id"] == "c-st2"])[0]
    assert ack["ok"] is False and ack["detail"] == f"FAIL 1/{checks}: env"


def test_selftest_on_board_builds_the_drivers_from_board_json(tmp_path):
    from bench import selftest

    from boards.virtual.hardware import VirtualBoard

    profile = load_profile("bench-s3-v2")
    (tmp_path / "board.json").write_text(json.dumps(profile))
    board = VirtualBoard(profile, VirtualClock())
    board.set_solar(19.0, 2.0)
    board.set_battery(12.7, 1.0)
    summary, report = selftest.on_board(str(tmp_path), machine=board.machine)
    checks = 2 + len(profile["ports"]) + 2  # no BME280 on this board
    assert summary == f"OK {checks}/{checks} checks", report
    assert [p["n"] for p in report["ports"]] == [p["n"] for p in profile["ports"]]
    assert report["display"] == {"ok": True} and board.display.lit
    board.set_port(1, 0.0, volts=0.0)  # a dead load switch: no 5 V on port 1
    summary, report = selftest.on_board(str(tmp_path), machine=board.machine)
    assert summary == f"FAIL 1/{checks}: port1" and report["ok"] is False


def test_critical_sleeps_announced_and_telemetry_every_15_minutes(
    mosquitto, bench_runner, gw, gateway, firmware_kit, tmp_path
):
    kit = firmware_kit
    # ×100: the 30 s allowed below is 0.3 s of real time a loaded host may stall the bench for
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit, speed=100.0))
    kit["wait_until"](lambda: ready(vb), what="bench up")
    vb.board.set_battery(11.8, -2.0)  # LiFePO4 under load below 12.0 V: critical
    sleeping = kit["wait_until"](
        lambda: [s for s in gw.of("status") if s["state"] == "sleeping"], what="sleeping"
    )[0]
    assert set(sleeping) == {"v", "bench", "state", "until"}
    validate("klupa/v1/mostar/mostar-01/status", json.dumps(sleeping).encode(), time.time())
    assert not vb.board.display.lit  # the display is off in critical
    # the Status goes out before the bench sleeps: its light-sleep request follows
    kit["wait_until"](
        lambda: any(kind == "light" for kind, _ in vb.board.sleep_requests),
        what="a light-sleep request",
    )
    # the pads' wake thresholds (0, never, until set): a press (360) crosses each, the
    # idle reading (600) does not
    wake = vb.board.touch_wake
    assert sorted(wake) == sorted(vb.profile["touch"]["pins"]), wake
    assert all(360 < level < 600 for level in wake.values()), wake
    # a touch wakes the display for a vote while the bench sleeps
    kit["wait_until"](lambda: vb.app.asleep, what="asleep")
    (snap,) = do(bench_runner, vb, [("press", 0), ("wait", 300), ("snap", 0)])
    assert snap[0] == "confirm" and snap[1] is True  # lit again, and the vote taken

    def critical_telemetry() -> list[dict[str, Any]]:
        return [t for t in gw.of("telemetry") if t["power"] == "critical"]

    tel = kit["wait_until"](
        lambda: len(critical_telemetry()) >= 3 and critical_telemetry(),
        timeout=60,
        what="three critical windows",
    )
    for a, b in zip(tel[1:], tel[2:], strict=False):
        assert b["period"] == 900 and abs((b["ts"] - a["ts"]) - 900) <= 30
    kit["wait_until"](lambda: vote_messages(gw), what="the vote taken while asleep")
    late = gateway(receipts=False)
    st = kit["wait_until"](lambda: late.of("status"), what="retained status")[-1]
    assert st["state"] in ("sleeping", "online")
    # every sleep left the broker cleanly: the offline will never fired
    assert all(s["state"] != "offline" for s in gw.of("status"))
    if st["state"] == "sleeping":
        assert st["until"] > tel[-1]["ts"] - 900


def test_critical_without_wifi_keeps_its_15_minute_windows(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    """In `critical` the bench waits, awake, for the link to send a window before it sleeps; but
    not for a link that is down and waiting to retry: then it sleeps at once and its windows keep
    their 15 minutes (each recorded in the spool, delivered when the Wi-Fi is back)."""
    kit = firmware_kit
    gw = gateway()
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit, speed=150.0))
    kit["wait_until"](lambda: ready(vb), what="bench up")
    vb.board.set_battery(11.8, -2.0)  # critical
    kit["wait_until"](lambda: vb.app.asleep, what="asleep")
    vb.board.set_link(False)
    down_from = vb.clock.time()
    # Five windows of the bench's time (30 s here); each would cost 20 s of real time if
    # the bench waited for a link that cannot come.
    kit["wait_until"](
        lambda: vb.clock.time() - down_from > 5 * 900 + 60, timeout=60, what="5 windows"
    )
    vb.board.set_link(True)
    up_at = vb.clock.time()

    def offline_windows() -> list[dict[str, Any]]:
        return sorted(
            (
                t
                for t in gw.of("telemetry")
                if t["power"] == "critical" and down_from + 900 < t["ts"] < up_at - 900
            ),
            key=lambda t: t["ts"],
        )

    tel = kit["wait_until"](
        lambda: len(offline_windows()) >= 3 and offline_windows(),
        timeout=60,
        what="the windows recorded while offline",
    )
    gaps = [b["ts"] - a["ts"] for a, b in zip(tel, tel[1:], strict=False)]
    # 15 min each (a bench waiting 20 s of real time per window would make them ~50 min)
    assert all(abs(g - 900) <= 60 for g in gaps), gaps
