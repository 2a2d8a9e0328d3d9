"""CPython firmware + virtual board + real Mosquitto, in accelerated virtual time."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from boards.virtual.bench import VirtualBench
from boards.virtual.clock import VirtualClock

SPEED = 20.0  # simulated seconds per real second: a 10-s window takes half a second


def make_bench(
    tmp: Path, port: int, kit: dict[str, Any], profile: str = "bench-v1", **cfg: Any
) -> VirtualBench:
    clock = VirtualClock(start=time.time() - 6 * 3600, speed=SPEED)
    vb = VirtualBench(tmp / "flash", profile, kit["bench_config"](port, **cfg), clock)
    vb.board.set_solar(18.42, 1.105)
    vb.board.set_battery(13.21, -0.412)
    return vb


def check_telemetry(t: dict[str, Any], ports: int, env: bool) -> None:
    """Field by field against docs/protocol.md, Telemetry."""
    assert t["v"] == 1 and t["bench"] == "mostar-01"
    for k in ("boot", "seq", "ts", "period", "heap"):
        assert isinstance(t[k], int), k
    assert t["boot"] >= 1 and t["seq"] >= 1
    assert abs(t["ts"] - time.time()) < 35 * 86400 and t["ts"] <= time.time() + 300
    assert 10 <= t["period"] <= 3600
    for k in ("v", "a", "wh"):
        assert isinstance(t["solar"][k], float)
    assert t["solar"]["wh"] >= 0
    assert abs(t["solar"]["v"] - 18.42) < 0.01 and abs(t["solar"]["a"] - 1.105) < 0.005
    assert abs(t["batt"]["v"] - 13.21) < 0.01 and abs(t["batt"]["a"] + 0.412) < 0.005
    assert 0 <= t["batt"]["soc"] <= 100
    assert [p["n"] for p in t["ports"]] == list(range(1, ports + 1))
    for p in t["ports"]:
        assert set(p) == {"n", "on", "plug", "a", "wh"}
        assert isinstance(p["on"], bool) and isinstance(p["plug"], bool)
        assert isinstance(p["a"], float) and isinstance(p["wh"], float)
    assert isinstance(t["wifi"]["rssi"], int) and -127 <= t["wifi"]["rssi"] <= 0
    assert isinstance(t["wifi"]["clients"], int)
    assert 0 <= t["seat"]["occ"] <= t["period"]
    assert isinstance(t["touch"]["n"], int)
    assert ("env" in t) == env
    if env:
        assert abs(t["env"]["t"] - 18.5) < 0.05 and abs(t["env"]["rh"] - 55.0) < 0.1
    assert t["power"] in ("normal", "saver", "critical")
    assert len(json.dumps(t)) <= 2048
    for v in re.findall(r"-?\d+\.\d+", json.dumps(t)):
        assert len(v.split(".")[1]) <= 3, v


def test_birth_retained_boot_event_and_telemetry_per_window(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    kit = firmware_kit
    gw = gateway()
    vb = make_bench(tmp_path, mosquitto.port, kit)
    vb.board.set_port(2, 0.912)
    vb.board.ap_clients = 3  # phones on the bench's own access point
    bench_runner.start(vb)
    tel = kit["wait_until"](
        lambda: len(gw.of("telemetry")) >= 3 and gw.of("telemetry"), what="telemetry"
    )
    events = gw.of("event")
    assert events[0]["type"] == "boot" and events[0]["reset"] == "power_on"
    assert events[0]["safe"] is False and events[0]["seq"] == 1
    assert events[0]["boot"] == 3000000  # provisioning's start
    for t in tel:
        check_telemetry(t, ports=5, env=True)
    assert tel[-1]["ports"][1]["plug"] is True and abs(tel[-1]["ports"][1]["a"] - 0.912) < 0.01
    assert tel[-1]["wifi"]["clients"] == 3  # the access point the profile names is up
    assert not [e for e in events if e["type"] == "fault"], events
    seqs = [t["seq"] for t in tel]
    assert seqs == sorted(seqs)
    # the retained birth, as a late subscriber sees it
    late = gateway(receipts=False)
    kit["wait_until"](lambda: late.of("status"), what="retained status")
    st = late.of("status")[0]
    assert st["state"] == "online" and st["boot"] == 3000000 and st["fw"] and "ts" in st
    assert any(r for t, _, _, r in late.messages if t.endswith("/status"))


def test_broker_outage_loses_nothing_and_duplicates_only_resends(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    kit = firmware_kit
    gw = gateway()
    # A record the broker acknowledges between gw.close() and mosquitto.stop() reaches no
    # subscriber (this stand-in gateway has a clean session): the bench sends it again after
    # resend_s, the lost-acknowledged-message path. 60 s simulated (3 s real) keeps that
    # within the wait below; the default 900 s would be 45 s real.
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit, resend_s=60))
    kit["wait_until"](lambda: len(gw.of("telemetry")) >= 2, what="first telemetry")
    gw.close()
    seen_before = {m["seq"] for leaf in ("telemetry", "event") for m in gw.of(leaf)}
    first_raw = list(gw.messages)
    mosquitto.stop()
    time.sleep(3.0)  # six windows without a broker
    made = vb.app.seq
    mosquitto.start()
    gw = gateway()
    kit["wait_until"](lambda: vb.app.link.connected, what="reconnect")

    def all_arrived() -> bool:
        got = {m["seq"] for leaf in ("telemetry", "event") for m in gw.of(leaf)}
        return set(range(1, made + 1)) <= (got | seen_before)

    kit["wait_until"](all_arrived, timeout=30, what="the backlog")
    # a (boot, seq) seen twice is the same record, byte for byte
    by_key: dict[tuple[int, int], bytes] = {}
    for t, _, raw, _ in first_raw + gw.messages:
        if t.endswith(("/telemetry", "/event")):
            body = json.loads(raw)
            key = (body["boot"], body["seq"])
            assert by_key.setdefault(key, raw) == raw
    kit["wait_until"](lambda: vb.app.spool.pending() <= 2, what="receipts to empty the spool")


def test_broker_killed_before_saving_while_the_gateway_is_away_bench_resends(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    """The lost-acknowledged-message case: the broker PUBACKed the bench's records and queued
    them for the gateway's persistent session while the gateway was away, then died (SIGKILL)
    before saving its queue. No Receipt ever covers those records, so the bench publishes them
    again after `resend_s` (shortened here), and the gateway ends with every record."""
    kit = firmware_kit
    gw = gateway(session=True)
    # A boot number of its own: the shared broker may hold (and, after the kill, reload from
    # its last save) the retained Receipt of another test's mostar-01 at the default boot.
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit, resend_s=60, boot=3_500_000))
    try:
        kit["wait_until"](lambda: len(gw.of("telemetry")) >= 2, what="first telemetry")
        gw.close()  # the gateway goes away; its session stays, the broker queues for it
        # What it received (and receipted) up to the moment it left.
        before = {(m["boot"], m["seq"]) for leaf in ("telemetry", "event") for m in gw.of(leaf)}
        away_from = vb.app.seq
        kit["wait_until"](
            lambda: vb.app.seq >= away_from + 4 and vb.app.link.idle(),
            what="records PUBACKed while the gateway is away",
        )
        made = vb.app.seq
        lost = vb.app.link.published
        mosquitto.kill()  # before its autosave: the queued messages are gone
        mosquitto.start()
        gw = gateway(session=True)
        kit["wait_until"](lambda: vb.app.link.connected, what="the bench reconnects")

        def missing() -> set[tuple[int, int]]:
            got = {(m["boot"], m["seq"]) for leaf in ("telemetry", "event") for m in gw.of(leaf)}
            return {(vb.app.boot_no, s) for s in range(1, made + 1)} - got - before

        try:
            kit["wait_until"](lambda: not missing(), timeout=60, what="every record")
        except AssertionError:
            raise AssertionError(
                f"never arrived: {sorted(missing())}; still pending {vb.app.spool.pending()}"
            ) from None
        assert vb.app.link.resent > 0, "nothing was re-sent: the broker's queue was not lost"
        assert vb.app.link.published > lost
        kit["wait_until"](lambda: vb.app.spool.pending() <= 2, what="receipts to empty the spool")
    finally:
        if not mosquitto.running:
            mosquitto.start()


def test_port_over_its_current_limit_is_switched_off_and_reported_as_tamper(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    """A port drawing more than its profile's `limit_a` (bench-v1: 2.6 A) is switched off and
    reported once as a `tamper` event of kind `port_overcurrent` naming the port; the other
    ports stay on, and the next telemetry shows the port off."""
    kit = firmware_kit
    gw = gateway()
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit))
    kit["wait_until"](lambda: len(gw.of("telemetry")) >= 1, what="first telemetry")
    assert vb.board.port_enabled(2)
    vb.board.set_port(3, 1.2)  # a phone charging normally on port 3
    vb.board.set_port(2, 3.4)  # a short, or a device pulling past the limit
    tamper = kit["wait_until"](
        lambda: [e for e in gw.of("event") if e["type"] == "tamper"], what="the tamper event"
    )
    assert tamper[0]["kind"] == "port_overcurrent" and "port 2" in tamper[0]["detail"]
    assert not vb.board.port_enabled(2)
    assert vb.board.port_enabled(3) and vb.board.port_enabled(1)
    at = tamper[0]["ts"]
    later = kit["wait_until"](
        lambda: [t for t in gw.of("telemetry") if t["ts"] > at + 10], what="telemetry after"
    )
    ports = {p["n"]: p for p in later[-1]["ports"]}
    assert ports[2]["on"] is False and ports[3]["on"] is True, ports
    time.sleep(1.0)  # several more windows: reported once, not at every sample
    assert len([e for e in gw.of("event") if e["type"] == "tamper"]) == 1


def test_abrupt_socket_loss_leaves_the_retained_offline_will(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    kit = firmware_kit
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit))
    gw = gateway()
    kit["wait_until"](
        lambda: vb.app is not None and vb.app.link is not None and vb.app.link.birth_acked,
        what="birth",
    )
    bench_runner.call(lambda: vb.board.set_link(False))
    kit["wait_until"](
        lambda: any(s["state"] == "offline" for s in gw.of("status")), what="the will"
    )
    late = gateway(receipts=False)
    kit["wait_until"](lambda: late.of("status"), what="retained will")
    assert late.of("status")[-1] == {"v": 1, "bench": "mostar-01", "state": "offline"}
    late.close()
    bench_runner.call(lambda: vb.board.set_link(True))
    kit["wait_until"](lambda: gw.of("status")[-1]["state"] == "online", what="back online")


# (Not bench.ota: the virtual bench's boot step, main.prepare, imports it on the host and keeps
# it; on the ESP32 main.run drops every app module before the app starts.)
JOB_MODULES = ("startup", "config", "spoolmaint", "connect", "commands", "doze", "selftest")


def job_modules_loaded() -> list[str]:
    """The firmware's one-job modules still importable without loading (docs/firmware.md)."""
    pkg = sys.modules.get("bench")
    return [
        n
        for n in JOB_MODULES
        if f"bench.{n}" in sys.modules or (pkg is not None and hasattr(pkg, n))
    ]


def test_commands_are_acked_applied_and_run_once(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    kit = firmware_kit
    gw = gateway()
    vb = make_bench(tmp_path, mosquitto.port, kit)
    from bench import runtime as bench_runtime

    for name in JOB_MODULES:  # earlier tests in this process may have imported them
        bench_runtime.unload(name)
    bench_runner.start(vb)
    kit["wait_until"](
        lambda: vb.app is not None and vb.app.link is not None and vb.app.link.birth_acked,
        what="birth",
    )
    # booted and connected: the boot's and the connection's modules are gone again
    kit["wait_until"](lambda: not job_modules_loaded(), what="job modules dropped")

    def ack(cid: str) -> list[dict[str, Any]]:
        return [a for a in gw.of("cmd/ack") if a["id"] == cid]

    gw.command("mostar-01", {"id": "c-ping", "op": "ping"})
    assert kit["wait_until"](lambda: ack("c-ping"), what="ping ack")[0]["ok"] is True
    gw.command("mostar-01", {"id": "c-bad", "op": "set", "args": {"period": 5}})
    a = kit["wait_until"](lambda: ack("c-bad"), what="refusal")[0]
    assert a["ok"] is False and "period" in a["detail"]
    gw.command("mostar-01", {"id": "c-set", "op": "set", "args": {"period": 20}})
    assert kit["wait_until"](lambda: ack("c-set"), what="set ack")[0]["ok"] is True
    kit["wait_until"](
        lambda: gw.of("telemetry") and gw.of("telemetry")[-1]["period"] == 20, what="period 20"
    )
    gw.command("mostar-01", {"id": "c-port", "op": "port", "args": {"n": 3, "on": False}})
    assert kit["wait_until"](lambda: ack("c-port"), what="port ack")[0]["ok"] is True
    assert vb.board.port_enabled(3) is False
    kit["wait_until"](lambda: gw.of("telemetry")[-1]["ports"][2]["on"] is False, what="port 3 off")
    gw.command("mostar-01", {"id": "c-port", "op": "port", "args": {"n": 3, "on": True}})
    kit["wait_until"](lambda: len(ack("c-port")) == 2, what="re-ack")
    assert vb.board.port_enabled(3) is False  # acknowledged again, not run again
    # n is an integer by docs/protocol.md's number rule, so 3.0 is port 3
    gw.command("mostar-01", {"id": "c-port-3.0", "op": "port", "args": {"n": 3.0, "on": True}})
    assert kit["wait_until"](lambda: ack("c-port-3.0"), what="port 3.0 ack")[0]["ok"] is True
    assert vb.board.port_enabled(3) is True
    gw.command("mostar-01", {"id": "c-port-off", "op": "port", "args": {"n": 3, "on": False}})
    assert kit["wait_until"](lambda: ack("c-port-off"), what="port off ack")[0]["ok"] is True
    gw.command("mostar-01", {"id": "c-what", "op": "dance"})
    assert kit["wait_until"](lambda: ack("c-what"), what="unknown op")[0]["ok"] is False
    # A burst larger than the bench's inbox (8): every command is acked, none dropped. Ids
    # come back whole, a long one and a non-ASCII one included, in UTF-8 without \u
    # escapes; the long one, delivered again, is acked again and not run again.
    long_id = "c-long-" + "x" * 120
    burst = [f"c-burst-{i:02d}" for i in range(18)] + ["c-čćž-đš", long_id]
    for cid in burst:
        gw.command("mostar-01", {"id": cid, "op": "ping"})
    kit["wait_until"](lambda: all(ack(c) for c in burst), what="an ack for every command")
    raw = [r for t, _, r, _ in gw.messages if t.endswith("/cmd/ack") and b"c-\xc4" in r]
    assert raw and "c-čćž-đš".encode() in raw[0] and b"\\u" not in raw[0]
    gw.command("mostar-01", {"id": long_id, "op": "port", "args": {"n": 3, "on": True}})
    kit["wait_until"](lambda: len(ack(long_id)) == 2, what="the long id acked again")
    assert ack(long_id)[1]["ok"] is True and ack(long_id)[1]["detail"] == ""
    assert vb.board.port_enabled(3) is False  # not run: the id was the ping's
    gw.command("mostar-01", {"id": "c-" + "y" * 300, "op": "ping"})
    fault = kit["wait_until"](
        lambda: [e for e in gw.of("event") if e["type"] == "fault" and "256" in e["detail"]],
        what="the too-long id refused",
    )[0]
    assert fault["code"] == "bad_command"
    assert job_modules_loaded() == []  # commands, and config for `set`, dropped after each
    boot = vb.app.boot_no
    gw.command("mostar-01", {"id": "c-reboot", "op": "reboot"})
    assert kit["wait_until"](lambda: ack("c-reboot"), what="reboot ack")[0]["ok"] is True
    kit["wait_until"](
        lambda: any(e["type"] == "boot" and e["boot"] == boot + 1 for e in gw.of("event")),
        what="the next boot",
    )
    ev = [e for e in gw.of("event") if e["type"] == "boot" and e["boot"] == boot + 1][0]
    assert ev["reset"] == "hard"
    # the setting survived the reboot
    kit["wait_until"](
        lambda: [t for t in gw.of("telemetry") if t["boot"] == boot + 1], what="telemetry"
    )
    assert [t for t in gw.of("telemetry") if t["boot"] == boot + 1][0]["period"] == 20


def test_bad_config_gives_safe_mode_and_a_fault(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    kit = firmware_kit
    gw = gateway()
    vb = make_bench(tmp_path, mosquitto.port, kit, period=5)  # below the minimum of 10
    bench_runner.start(vb)
    kit["wait_until"](lambda: len(gw.of("event")) >= 2, what="events")
    boot, fault = gw.of("event")[:2]
    assert boot["type"] == "boot" and boot["safe"] is True
    assert fault["type"] == "fault" and fault["code"] == "bad_config"
    assert "period" in fault["detail"]
    gw.command("mostar-01", {"id": "c-1", "op": "port", "args": {"n": 1, "on": False}})
    gw.command("mostar-01", {"id": "c-2", "op": "ping"})
    kit["wait_until"](lambda: len(gw.of("cmd/ack")) >= 2, what="acks")
    acks = {a["id"]: a for a in gw.of("cmd/ack")}
    assert acks["c-1"]["ok"] is False and acks["c-2"]["ok"] is True
    time.sleep(1.0)
    assert gw.of("telemetry") == []  # safe mode runs only the link


def test_s3_profile_reports_three_ports_and_lead_acid_thresholds(
    mosquitto, bench_runner, gateway, firmware_kit, tmp_path
):
    kit = firmware_kit
    gw = gateway()
    vb = bench_runner.start(make_bench(tmp_path, mosquitto.port, kit, profile="bench-s3-v2"))
    tel = kit["wait_until"](lambda: gw.of("telemetry"), what="telemetry")
    check_telemetry(tel[0], ports=3, env=False)
    th = vb.app.power.th
    assert th["critical_v"] == 11.7
    assert vb.app.power.capacity == 55 * 3600 * 1000 * 1000
    # 11.6 V under load is critical for lead-acid
    vb.board.set_battery(11.6, -2.0)
    kit["wait_until"](
        lambda: any(e["type"] == "power" and e["to"] == "critical" for e in gw.of("event")),
        what="critical",
    )
    kit["wait_until"](
        lambda: not any(vb.board.port_enabled(n) for n in (1, 2, 3)), what="ports off"
    )


def test_windows_stay_on_their_grid(mosquitto, bench_runner, gateway, firmware_kit, tmp_path):
    """Each window is due one period after the previous one was due: the time a bench spends
    sampling and recording does not add up, window after window (were each window to start
    when the last was recorded, 24 windows would drift by 24 times that time)."""
    kit = firmware_kit
    gw = gateway()
    vb = make_bench(tmp_path, mosquitto.port, kit)
    vb.clock.set_speed(25.0)  # 24 windows of 10 s in under 10 s of real time
    bench_runner.start(vb)
    tel = kit["wait_until"](
        lambda: len(gw.of("telemetry")) >= 26 and gw.of("telemetry"),
        timeout=60,
        what="26 windows",
    )
    first, last = tel[1], tel[25]
    assert first["boot"] == last["boot"] and last["seq"] > first["seq"]
    # 5 s of the bench's time is 0.2 s of real time: a stall of the host at the last window
    assert abs((last["ts"] - first["ts"]) - 24 * 10) <= 5, (first["ts"], last["ts"])
