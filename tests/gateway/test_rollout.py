"""Staged fleet updates (`edge_gateway.rollout`): stage planning, the per-bench steps read from a
real store that each test fills as the gateway would, halts, and resuming from the state file.
Commands go to a recording sender; time is the test's own."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from edge_gateway import rollout as R
from edge_gateway.cli import main as gateway_main
from edge_gateway.config import load
from edge_gateway.rollout_cli import place_bundle
from edge_gateway.store import Store
from testkit.gateway import event, telemetry, write_config

V = "1.1.0"
OLD = "1.0.0"
URL = "http://pi:8070/1.1.0/manifest.json"
SHA = "ab" * 32
T0 = 1_800_000_000.0
LIMITS = R.Limits(soak_s=300, ack_timeout_s=120, commit_timeout_s=900)


class Sender:
    """Records each command; acks only what the test says a bench acked."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any], str]] = []
        self.acks: dict[str, dict[str, Any]] = {}

    def send(self, bench: str, op: str, args: dict[str, Any]) -> str:
        cid = f"c-{len(self.sent)}"
        self.sent.append((bench, op, args, cid))
        return cid

    def ack(self, cid: str) -> dict[str, Any] | None:
        return self.acks.get(cid)

    def benches(self) -> list[str]:
        return [b for b, _, _, _ in self.sent]

    def ack_last(self, bench: str, ok: bool = True, detail: str = "") -> None:
        cid = [c for b, _, _, c in self.sent if b == bench][-1]
        self.acks[cid] = {"id": cid, "ok": ok, "detail": detail}


class Bench:
    """One bench writing into the store as the gateway stores it: records and its row."""

    def __init__(self, store: Store, name: str, boot: int = 100, online: bool = True) -> None:
        self.store, self.name, self.boot, self.seq = store, name, boot, 0
        self.fw = OLD
        self.row(online=online)
        self.window(heap=40000)

    def row(self, online: bool = True, sleeping: bool = False, power: str = "normal") -> None:
        self.store.save_bench(
            self.name,
            online=int(online),
            sleeping=int(sleeping),
            power=power,
            fw=self.fw,
            boot=self.boot,
        )

    def put(self, kind: str, body: dict[str, Any], received: float) -> None:
        self.store.insert_message(
            self.name, self.boot, body["seq"], kind, body["ts"], received, json.dumps(body).encode()
        )

    def window(self, t: float = T0, heap: int = 40000, period: int = 60) -> None:
        self.seq += 1
        body = telemetry(self.name, self.boot, self.seq, int(t), period=period, heap=heap)
        self.put("telemetry", body, t)

    def event(self, t: float, type_: str, **fields: Any) -> None:
        self.seq += 1
        self.put("event", event(self.name, self.boot, self.seq, int(t), type_, **fields), t)

    def reboot_into(self, fw: str, t: float) -> None:
        self.boot, self.seq, self.fw = self.boot + 1, 0, fw
        self.event(t, "boot", reset="soft", fw=fw, safe=False)
        self.row()

    def commit(self, t: float) -> None:
        """What a bench that takes the update stores: its steps, the new boot, `applied`."""
        self.event(t, "ota", state="downloading", version=V)
        self.event(t + 1, "ota", state="verified", version=V)
        self.reboot_into(V, t + 5)
        self.window(t + 10)
        self.event(t + 65, "ota", state="applied", version=V)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    st = Store(str(tmp_path / "gw.sqlite"))
    yield st
    st.close()


def rollout(store: Store, stages: list[list[str]], sender: Sender) -> R.Rollout:
    state = R.RolloutState(version=V, url=URL, sha256=SHA, stages=stages)
    return R.Rollout(state, R.StoreFleet(store.path), sender, LIMITS)


def canary_acked(store: Store, t: float, *then: str) -> tuple[Bench, Sender, R.Rollout]:
    """mostar-01 the canary (then a stage of ``then``): begun at T0, its command acked at ``t``."""
    c = Bench(store, "mostar-01")
    for name in then:
        Bench(store, name)
    sender = Sender()
    ro = rollout(store, [["mostar-01"], list(then)] if then else [["mostar-01"]], sender)
    ro.step(T0)
    sender.ack_last("mostar-01")
    ro.step(t)
    return c, sender, ro


def states(ro: R.Rollout) -> dict[str, str]:
    return {b: r.state for b, r in ro.s.benches.items()}


def commit_and_soak(ro: R.Rollout, bench: Bench, sender: Sender, t: float) -> float:
    """Ack the last command to ``bench``, store its commit, and run the soak; the time after."""
    sender.ack_last(bench.name)
    ro.step(t)
    bench.commit(t + 1)
    ro.step(t + 70)
    assert ro.s.benches[bench.name].state == R.SOAKING
    for k in range(1, 7):
        bench.window(t + 70 + 60 * k)
        ro.step(t + 70 + 60 * k)
    return t + 70 + 60 * 6


def one_file_bundle(served: Path) -> Path:
    """A bundle of version V (one file, a one-byte main.py) placed where the gateway serves it."""
    folder = served / V
    folder.mkdir(parents=True)
    entry = {"path": "main.py", "size": 1, "sha256": hashlib.sha256(b"\n").hexdigest()}
    (folder / "main.py").write_bytes(b"\n")
    (folder / "manifest.json").write_text(json.dumps({"version": V, "files": [entry]}))
    return folder


def ota_config(tmp_path: Path, store: Store, broker: int, served: Path, http: int = 0) -> Path:
    """The gateway's config for a Mostar gateway serving ``served`` (on port ``http`` if given)."""
    ota = f'[ota]\ndir = "{served}"\n' + (f"port = {http}\n" if http else "")
    return write_config(tmp_path / "gw.toml", "mostar", broker, store.path, ota)


# --------------------------------------------------------------------------- planning


def test_stages_are_the_canary_then_a_quarter_of_the_rest_rounded_up_then_all() -> None:
    benches = [f"mostar-{i:02d}" for i in range(1, 10)]
    stages = R.plan_stages("mostar-05", ["25%", "all"], benches, set(benches))
    assert stages == [
        ["mostar-05"],
        ["mostar-01", "mostar-02"],
        ["mostar-03", "mostar-04", "mostar-06", "mostar-07", "mostar-08", "mostar-09"],
    ]


def test_online_benches_fill_a_stage_first_and_benches_on_the_version_count_for_no_share() -> None:
    benches = ["m-01", "m-02", "m-03", "m-04", "m-05", "m-06"]
    stages = R.plan_stages("m-01", ["2"], benches, online={"m-04", "m-05"}, current={"m-02"})
    # m-02 is on the version already: it joins the last stage (where it is skipped)
    assert stages == [["m-01"], ["m-04", "m-05", "m-03", "m-06", "m-02"]]
    assert R.plan_stages("m-01", [], benches, set()) == [["m-01"], sorted(benches[1:])]


@pytest.mark.parametrize("bad", ["0", "0%", "150%", "half", "-1", "25 %x"])
def test_a_stage_is_a_percentage_a_count_or_all(bad: str) -> None:
    with pytest.raises(ValueError):
        R.parse_stage(bad)
    assert [R.parse_stage(s) for s in ("25%", "3", "ALL")] == ["25%", "3", "all"]


# --------------------------------------------------------------------------- stepping


def test_no_bench_past_the_canary_is_sent_anything_until_it_committed_and_soaked(
    store: Store,
) -> None:
    c, a, b = (Bench(store, n) for n in ("mostar-01", "mostar-02", "mostar-03"))
    sender = Sender()
    ro = rollout(store, [["mostar-01"], ["mostar-02", "mostar-03"]], sender)
    ro.step(T0)
    assert sender.sent == [("mostar-01", "ota", {"url": URL, "version": V, "sha256": SHA}, "c-0")]
    sender.ack_last("mostar-01")
    ro.step(T0 + 5)
    assert states(ro)["mostar-01"] == R.TRIAL
    c.commit(T0 + 10)  # rebooted into it; `applied` once healthy
    ro.step(T0 + 80)
    assert states(ro)["mostar-01"] == R.SOAKING
    for k in range(1, 5):  # four minutes of a five-minute soak
        c.window(T0 + 80 + 60 * k)
        ro.step(T0 + 80 + 60 * k)
    assert sender.benches() == ["mostar-01"]
    c.window(T0 + 80 + 300)
    ro.step(T0 + 80 + 300)
    assert states(ro)["mostar-01"] == R.DONE
    ro.step(T0 + 381)
    assert sender.benches() == ["mostar-01", "mostar-02", "mostar-03"]
    sender.ack_last("mostar-02")
    sender.ack_last("mostar-03")
    ro.step(T0 + 400)
    a.commit(T0 + 401)
    b.commit(T0 + 402)
    ro.step(T0 + 470)
    assert states(ro) == {"mostar-01": R.DONE, "mostar-02": R.SOAKING, "mostar-03": R.SOAKING}
    for k in range(1, 6):
        a.window(T0 + 470 + 60 * k)
        b.window(T0 + 470 + 60 * k)
        ro.step(T0 + 470 + 60 * k)
    assert ro.step(T0 + 800) is True
    assert ro.finished() and not ro.s.halted


def test_a_canary_that_rolls_back_halts_the_rollout_and_no_other_bench_is_sent_it(
    store: Store,
) -> None:
    c, sender, ro = canary_acked(store, T0 + 5, "mostar-02")
    c.event(T0 + 6, "ota", state="downloading", version=V)
    c.event(T0 + 7, "ota", state="verified", version=V)
    c.boot += 2  # the trial boot crashed; the one after put the old app back
    c.seq = 0
    c.event(T0 + 20, "boot", reset="soft", fw=OLD, safe=False)
    c.event(T0 + 21, "ota", state="rolled_back", version=V)
    assert ro.step(T0 + 30) is True
    assert states(ro) == {"mostar-01": R.ROLLED_BACK, "mostar-02": R.PLANNED}
    assert ro.s.halted.startswith("mostar-01: rolled_back")
    for t in range(40, 400, 60):
        assert ro.step(T0 + t) is True
    assert sender.benches() == ["mostar-01"]


def test_a_refused_command_or_a_failed_event_halts(store: Store) -> None:
    Bench(store, "mostar-01")
    sender = Sender()
    ro = rollout(store, [["mostar-01"]], sender)
    ro.step(T0)
    sender.ack_last("mostar-01", ok=False, detail="manifest signature does not verify")
    assert ro.step(T0 + 5) is True
    assert states(ro)["mostar-01"] == R.FAILED
    assert "signature" in ro.s.halted

    other = Bench(store, "mostar-02")
    other.event(T0 + 2, "ota", state="failed", version=V)  # from before the command: not ours
    sender2 = Sender()
    ro2 = rollout(store, [["mostar-02"]], sender2)
    ro2.step(T0 + 3)
    assert states(ro2)["mostar-02"] == R.SENDING
    other.event(T0 + 4, "ota", state="downloading", version=V)
    other.event(T0 + 5, "ota", state="failed", version=V)
    assert ro2.step(T0 + 6) is True
    assert states(ro2)["mostar-02"] == R.FAILED


@pytest.mark.parametrize(
    "trouble, why",
    [
        ("fault", "fault sampler_stuck"),
        ("reboot", "rebooted"),
        ("heap", "free heap 9000"),
        ("silence", "no telemetry window"),
    ],
)
def test_a_committed_bench_that_regresses_in_its_soak_halts(
    store: Store, trouble: str, why: str
) -> None:
    c, sender, ro = canary_acked(store, T0 + 1, "mostar-02")
    c.commit(T0 + 2)
    ro.step(T0 + 70)
    assert states(ro)["mostar-01"] == R.SOAKING
    t = T0 + 130
    if trouble == "fault":
        c.event(t, "fault", code="sampler_stuck", detail="no sample \x1b[2J for 30 s")
    elif trouble == "reboot":
        c.reboot_into(V, t)
    elif trouble == "heap":
        c.window(t, heap=9000)  # the old app's windows had 40000 free
    else:
        t = T0 + 70 + 200  # no window since the one at commit
    if trouble != "silence":
        c.window(t)
    ro.step(t + 1)
    assert states(ro)["mostar-01"] == R.REGRESSED, ro.s.benches["mostar-01"]
    assert why in ro.s.halted
    shown = R.table(ro.s, R.StoreFleet(store.path).benches(), T0 + 2000)
    assert "regressed" in shown and "\x1b" not in shown
    ro.step(T0 + 2000)
    assert sender.benches() == ["mostar-01"]


def test_an_offline_bench_waits_without_holding_later_stages_and_is_sent_it_when_back(
    store: Store,
) -> None:
    c = Bench(store, "mostar-01")
    away = Bench(store, "mostar-02", online=False)
    last = Bench(store, "mostar-03")
    asleep = Bench(store, "mostar-04")
    asleep.row(online=False, sleeping=True)
    sender = Sender()
    ro = rollout(store, [["mostar-01"], ["mostar-02", "mostar-04"], ["mostar-03"]], sender)
    ro.step(T0)
    end = commit_and_soak(ro, c, sender, T0 + 1)
    ro.step(end + 1)
    assert states(ro)["mostar-02"] == R.WAITING and "offline" in ro.s.benches["mostar-02"].detail
    assert "asleep" in ro.s.benches["mostar-04"].detail
    ro.step(end + 2)  # stage 1 has nobody to send to: stage 2 begins
    assert sender.benches() == ["mostar-01", "mostar-03"]
    end = commit_and_soak(ro, last, sender, end + 3)
    assert ro.step(end + 1) is False  # not over while benches wait
    assert ro.only_waiting() == ["mostar-02", "mostar-04"]
    away.row(online=True)
    ro.step(end + 100)
    assert ro.only_waiting() == []
    assert sender.benches() == ["mostar-01", "mostar-03", "mostar-02"]
    end = commit_and_soak(ro, away, sender, end + 101)
    asleep.fw = V  # updated by hand in the meantime: skipped, never sent
    asleep.row(online=True)
    assert ro.step(end + 1) is True
    assert states(ro) == {
        "mostar-01": R.DONE,
        "mostar-02": R.DONE,
        "mostar-03": R.DONE,
        "mostar-04": R.SKIPPED,
    }
    assert sender.benches() == ["mostar-01", "mostar-03", "mostar-02"]


def test_a_bench_with_a_critical_battery_is_not_sent_it(store: Store) -> None:
    c = Bench(store, "mostar-01")
    c.row(power="critical")
    sender = Sender()
    ro = rollout(store, [["mostar-01"]], sender)
    ro.step(T0)
    assert sender.sent == [] and ro.s.benches["mostar-01"].detail == "battery critical"
    c.row()
    ro.step(T0 + 10)
    assert sender.benches() == ["mostar-01"]


# --------------------------------------------------------------------------- resume


def test_a_second_run_continues_from_the_state_file(store: Store, tmp_path: Path) -> None:
    c = Bench(store, "mostar-01")
    quiet = Bench(store, "mostar-02")
    late = Bench(store, "mostar-03")
    sender = Sender()
    ro = rollout(store, [["mostar-01"], ["mostar-02", "mostar-03"]], sender)
    ro.step(T0)
    end = commit_and_soak(ro, c, sender, T0 + 1)
    ro.step(end + 1)
    assert sender.benches() == ["mostar-01", "mostar-02", "mostar-03"]
    path = str(tmp_path / "rollout-1.1.0.json")
    R.save_state(path, ro.s)  # Ctrl-C here: neither ack was seen

    # mostar-03 got it and began; mostar-02 never did (it had gone away).
    late.event(end + 2, "ota", state="downloading", version=V)
    loaded = R.load_state(path)
    assert loaded is not None and loaded.benches["mostar-01"].state == R.DONE
    sender2 = Sender()
    ro2 = R.Rollout(loaded, R.StoreFleet(store.path), sender2, LIMITS)
    ro2.step(end + 200)  # past the ack timeout of the first run's commands
    assert states(ro2) == {"mostar-01": R.DONE, "mostar-02": R.WAITING, "mostar-03": R.TRIAL}
    ro2.step(end + 201)
    assert sender2.benches() == ["mostar-02"]  # again to the one that never began; not the canary
    assert quiet.fw == OLD


def test_a_halt_is_kept_in_the_state_file_and_a_second_run_sends_nothing(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Bench(store, "mostar-01")
    Bench(store, "mostar-02")
    store.conn.execute("PRAGMA wal_checkpoint")
    served = tmp_path / "ota"
    bundle = tmp_path / "build"
    bundle.mkdir()
    (bundle / "main.py").write_text("print('hi')\n")
    data = (bundle / "main.py").read_bytes()

    manifest = {
        "version": V,
        "files": [
            {"path": "main.py", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        ],
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    cfg_path = ota_config(tmp_path, store, 1, served, http=8070)
    served.mkdir()
    version, url, sha = place_bundle(load(str(cfg_path)), bundle, "http://10.0.0.2:8070")
    raw = (bundle / "manifest.json").read_bytes()
    assert (version, url, sha) == (
        V,
        f"http://10.0.0.2:8070/{V}/manifest.json",
        hashlib.sha256(raw).hexdigest(),
    )
    assert (served / V / "main.py").read_bytes() == data
    state = R.RolloutState(
        version=V,
        url=url,
        sha256=sha,
        stages=[["mostar-01"], ["mostar-02"]],
        halted="x\x1b[2J",  # a refusing ack's detail is the bench's text
    )
    state.benches = {"mostar-01": R.BenchRun(state=R.ROLLED_BACK), "mostar-02": R.BenchRun()}
    R.save_state(R.state_path(store.path, V), state)
    # no broker on port 1: a run that tried to send would fail with 1, not answer 3
    argv = ["ota", "rollout", "--config", str(cfg_path), "--bundle", str(bundle)]
    rc = gateway_main([*argv, "--canary", "mostar-01", "--then", "all"])
    out = capsys.readouterr().out
    assert rc == 3, out
    assert "halted: x\\x1b[2J" in out and "rolled_back" in out and "\x1b" not in out

    # another build of the same version is refused, naming the file
    (bundle / "main.py").write_text("print('other')\n")
    manifest["files"][0]["size"] = len(b"print('other')\n")
    manifest["files"][0]["sha256"] = hashlib.sha256(b"print('other')\n").hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(R.RolloutError, match="another build of 1.1.0"):
        place_bundle(load(str(cfg_path)), bundle, None)


def test_after_a_halt_a_bench_of_the_same_stage_coming_back_is_not_sent_it(store: Store) -> None:
    Bench(store, "mostar-01").fw = V
    store.save_bench("mostar-01", fw=V)  # the canary runs it already: skipped
    bad = Bench(store, "mostar-02")
    away = Bench(store, "mostar-03", online=False)
    sender = Sender()
    ro = rollout(store, [["mostar-01"], ["mostar-02", "mostar-03"]], sender)
    ro.step(T0)
    ro.step(T0 + 1)
    assert states(ro) == {"mostar-01": R.SKIPPED, "mostar-02": R.SENDING, "mostar-03": R.WAITING}
    sender.ack_last("mostar-02")
    ro.step(T0 + 2)
    bad.event(T0 + 3, "ota", state="rolled_back", version=V)
    assert ro.step(T0 + 4) is True
    away.row(online=True)
    assert ro.step(T0 + 60) is True
    assert sender.benches() == ["mostar-02"]
    assert states(ro)["mostar-03"] == R.WAITING


def test_an_offline_canary_holds_every_other_stage(store: Store) -> None:
    canary = Bench(store, "mostar-01", online=False)
    Bench(store, "mostar-02")
    sender = Sender()
    ro = rollout(store, [["mostar-01"], ["mostar-02"]], sender)
    for t in range(0, 3600, 60):
        assert ro.step(T0 + t) is False
    assert ro.only_waiting() == []  # the canary's stage has not passed
    assert sender.sent == [] and states(ro)["mostar-02"] == R.PLANNED
    canary.row(online=True)
    ro.step(T0 + 3600)
    assert sender.benches() == ["mostar-01"]


def test_a_trial_app_is_not_committed_before_its_applied_event(store: Store) -> None:
    c, _, ro = canary_acked(store, T0 + 1)
    c.event(T0 + 2, "ota", state="downloading", version=V)
    c.event(T0 + 3, "ota", state="verified", version=V)
    c.reboot_into(V, T0 + 10)  # on trial: runs the new app, not yet healthy
    c.window(T0 + 20)
    ro.step(T0 + 30)
    assert states(ro)["mostar-01"] == R.TRIAL
    c.event(T0 + 70, "ota", state="applied", version=V)
    ro.step(T0 + 71)
    assert states(ro)["mostar-01"] == R.SOAKING
    assert ro.s.benches["mostar-01"].new_boot == c.boot


def test_a_trial_that_neither_commits_nor_rolls_back_in_time_halts(store: Store) -> None:
    c, _, ro = canary_acked(store, T0 + 1)
    c.reboot_into(V, T0 + 10)
    assert ro.step(T0 + 800) is False
    assert ro.step(T0 + 1000) is True
    assert states(ro)["mostar-01"] == R.STUCK


def test_a_bundle_already_where_the_gateway_serves_it_is_used_in_place(tmp_path: Path) -> None:
    served = tmp_path / "ota"
    folder = served / "builds" / "b7"
    folder.mkdir(parents=True)
    (folder / "a.mpy").write_bytes(b"\x4d\x06")
    entry = {"path": "a.mpy", "size": 2, "sha256": hashlib.sha256(b"\x4d\x06").hexdigest()}
    (folder / "manifest.json").write_text(json.dumps({"version": "2.0.0", "files": [entry]}))
    cfg = load(
        str(
            write_config(
                tmp_path / "gw.toml",
                "mostar",
                1,
                tmp_path / "s.sqlite",
                f'[ota]\ndir = "{served}"\nport = 8071\n',
            )
        )
    )
    version, url, _ = place_bundle(cfg, folder, "http://pi:8071/")
    assert (version, url) == ("2.0.0", "http://pi:8071/builds/b7/manifest.json")
    assert sorted(p.name for p in served.iterdir()) == ["builds"]  # nothing copied
    (folder / "a.mpy").write_bytes(b"\x4d\x07")  # a file that is not what the manifest says
    with pytest.raises(R.RolloutError, match="differs from the manifest"):
        place_bundle(cfg, folder, None)


def test_the_command_ends_with_4_when_only_offline_benches_are_left_and_sends_them_nothing(
    store: Store, tmp_path: Path, mosquitto: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import paho.mqtt.client as mqtt

    canary = Bench(store, "mostar-01")
    canary.fw = V
    canary.row()  # on the version already: skipped
    Bench(store, "mostar-02", online=False)
    served = tmp_path / "ota"
    folder = one_file_bundle(served)
    cfg_path = ota_config(tmp_path, store, mosquitto.port, served, http=8070)
    seen: list[str] = []
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    spy.on_message = lambda c, u, m: seen.append(m.topic)
    spy.connect("127.0.0.1", mosquitto.port)
    spy.subscribe("klupa/v1/mostar/+/cmd", qos=1)
    spy.loop_start()
    try:
        argv = ["ota", "rollout", "--config", str(cfg_path), "--bundle", str(folder)]
        rc = gateway_main([*argv, "--canary", "mostar-01", "--then", "all", "--no-wait"])
        time.sleep(0.5)
    finally:
        spy.loop_stop()
        spy.disconnect()
    out = capsys.readouterr().out
    assert rc == 4, out
    assert "left waiting for their return: mostar-02" in out
    assert seen == []
    saved = R.load_state(R.state_path(store.path, V))
    assert saved is not None
    assert {b: r.state for b, r in saved.benches.items()} == {
        "mostar-01": R.SKIPPED,
        "mostar-02": R.WAITING,
    }


def test_retry_clears_a_halt_and_a_regressed_bench_on_the_version_counts_as_done(
    store: Store, tmp_path: Path, mosquitto: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = Bench(store, "mostar-01")
    canary.fw = V
    canary.row()
    Bench(store, "mostar-02", online=False)
    folder = one_file_bundle(tmp_path / "ota")
    cfg_path = ota_config(tmp_path, store, mosquitto.port, tmp_path / "ota", http=8070)
    sha = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    halted = R.RolloutState(
        version=V, url=URL, sha256=sha, stages=[["mostar-01"], ["mostar-02"]], halted="x"
    )
    halted.benches = {
        "mostar-01": R.BenchRun(state=R.REGRESSED, detail="fault touch_wet"),
        "mostar-02": R.BenchRun(stage=1),
    }
    R.save_state(R.state_path(store.path, V), halted)
    argv = ["ota", "rollout", "--config", str(cfg_path), "--bundle", str(folder)]
    argv += ["--canary", "mostar-01", "--no-wait"]
    assert gateway_main(argv) == 3
    assert gateway_main([*argv, "--retry"]) == 4, capsys.readouterr().out
    saved = R.load_state(R.state_path(store.path, V))
    assert saved is not None and saved.halted == ""
    assert {b: r.state for b, r in saved.benches.items()} == {
        "mostar-01": R.SKIPPED,
        "mostar-02": R.WAITING,
    }


# --------------------------------------------------------------------------- a stage at a time


def test_upto_begins_no_stage_after_it_and_ends_once_its_stages_are_done(store: Store) -> None:
    c, a = Bench(store, "mostar-01"), Bench(store, "mostar-02")
    sender = Sender()
    state = R.RolloutState(version=V, url=URL, sha256=SHA, stages=[["mostar-01"], ["mostar-02"]])
    ro = R.Rollout(state, R.StoreFleet(store.path), sender, LIMITS, upto=0)
    ro.step(T0)
    t = commit_and_soak(ro, c, sender, T0 + 1)
    assert ro.step(t + 1) is True  # the canary's stage is done: over, as far as this run goes
    assert ro.finished() and sender.benches() == ["mostar-01"]
    assert states(ro)["mostar-02"] == R.PLANNED
    # The next run, up to stage 1, sends it on.
    ro2 = R.Rollout(state, R.StoreFleet(store.path), sender, LIMITS, upto=1)
    assert ro2.step(t + 2) is False
    assert sender.benches() == ["mostar-01", "mostar-02"]
    commit_and_soak(ro2, a, sender, t + 3)
    assert ro2.finished()


def test_an_empty_canary_stage_lets_the_next_begin_and_upto_waits_only_for_its_own(
    store: Store,
) -> None:
    Bench(store, "jablanica-01")
    Bench(store, "jablanica-02", online=False)
    sender = Sender()
    stages: list[list[str]] = [[], ["jablanica-02"], ["jablanica-01"]]
    state = R.RolloutState(version=V, url=URL, sha256=SHA, stages=stages)
    ro = R.Rollout(state, R.StoreFleet(store.path), sender, LIMITS, upto=1)
    ro.step(T0)
    # jablanica-02 is offline: it waits; stage 2 is not this run's, so nothing is sent at all
    assert sender.sent == [] and states(ro)["jablanica-01"] == R.PLANNED
    assert ro.only_waiting() == ["jablanica-02"]


def test_stages_given_whole_are_kept_and_other_stages_on_a_second_run_are_refused(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Bench(store, "mostar-01")
    folder = one_file_bundle(tmp_path / "ota")
    cfg_path = ota_config(tmp_path, store, 1, tmp_path / "ota")
    argv = ["ota", "rollout", "--config", str(cfg_path), "--bundle", str(folder)]
    assert gateway_main([*argv, "--canary", "mostar-01", "--stage", "mostar-01"]) == 2
    assert gateway_main([*argv, "--stage", "mostar-01", "--stage", "mostar-01"]) == 1
    assert "a bench in two stages: mostar-01" in capsys.readouterr().err
    # No broker listens on port 1: the plan is saved before the link fails.
    assert gateway_main([*argv, "--stage", "-", "--stage", "mostar-01,mostar-09"]) == 1
    assert "mostar-09 has never been seen by this gateway" in capsys.readouterr().out
    saved = R.load_state(R.state_path(store.path, V))
    assert saved is not None and saved.stages == [[], ["mostar-01", "mostar-09"]]
    assert gateway_main([*argv, "--stage", "mostar-01"]) == 1
    assert "records other stages (- | mostar-01,mostar-09)" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["m1", "Mostar-01", "mostar-01,", "mostar 01", "1-mostar", ""])
def test_a_stage_given_whole_names_benches_by_the_contract_s_rule(bad: str) -> None:
    from edge_gateway.rollout_cli import bench_list

    with pytest.raises(argparse.ArgumentTypeError, match="a stage is bench ids"):
        bench_list(bad)
    assert bench_list(" mostar-01, m-2 ") == ["mostar-01", "m-2"]
    assert bench_list("-") == []


def test_json_lines_carry_each_bench_s_state_for_the_fleet_command() -> None:
    from edge_gateway.rollout_cli import bench_json

    run = R.BenchRun(state=R.SOAKING, stage=2, detail="committed in boot 7", since=T0)
    assert json.loads(bench_json("mostar-02", run, "1.1.0")) == {
        "bench": "mostar-02",
        "stage": 2,
        "state": "soaking",
        "detail": "committed in boot 7",
        "since": T0,
        "fw": "1.1.0",
        "rollout": 1,
    }


def test_a_hang_up_stops_the_command_as_ctrl_c_does(
    store: Store, tmp_path: Path, mosquitto: Any
) -> None:
    import signal
    import subprocess
    import sys

    Bench(store, "mostar-01", online=False)  # the canary is away: the rollout waits for it
    folder = one_file_bundle(tmp_path / "ota")
    cfg_path = ota_config(tmp_path, store, mosquitto.port, tmp_path / "ota", http=8070)
    argv = [sys.executable, "-m", "klupa.cli", "gateway", "ota", "rollout", "--config"]
    argv += [str(cfg_path), "--bundle", str(folder), "--canary", "mostar-01", "--every", "0.2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # until its loop runs (the ssh of `klupa fleet` may go then)
        seen.append(line)
        if "mostar-01: waiting (offline)" in line:
            break
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(20) == 130, "".join(seen)
    assert "stopped; the same command continues" in proc.stdout.read()
