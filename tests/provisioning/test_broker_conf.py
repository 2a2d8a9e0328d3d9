"""The broker configuration provisioning generates, started as it is in a real Mosquitto.

The files of ``brokers/mostar/`` are installed under a temporary root exactly where they go on
the Pi (`broker.PiPaths`), and Mosquitto is started with the generated ``mosquitto.conf``,
rendered for that root: only the install prefix, the loopback port and the user differ.
"""

from __future__ import annotations

import getpass
import json
import queue
import re
import subprocess
import time
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from provisioning import broker
from provisioning.deployment import Deployment
from testkit.services import ProvisionedBroker, render_broker_conf

T = "klupa/v1/mostar"


@pytest.fixture
def pi(provisioned_broker: ProvisionedBroker) -> ProvisionedBroker:
    """The Pi's Mosquitto with exactly the generated files (testkit.services)."""
    return provisioned_broker


class Client:
    """One MQTT connection; ``got`` receives (topic, payload, qos)."""

    def __init__(
        self,
        pi: ProvisionedBroker,
        user: str | None,
        password: str | None = None,
        client_id: str | None = None,
        clean: bool = True,
        tls: bool = False,
        manual_ack: bool = False,
    ) -> None:
        self.got: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self.unacked: list[int] = []
        self.result: queue.Queue[int] = queue.Queue()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id if client_id is not None else (user or ""),
            clean_session=clean,
        )
        if user is not None:
            self.c.username_pw_set(user, password)
        if tls:
            self.c.tls_set(ca_certs=pi.ca)
        self.c.manual_ack_set(manual_ack)

        def on_message(_c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
            if manual_ack:
                self.unacked.append(m.mid)
            self.got.put((m.topic, bytes(m.payload), m.qos))

        self.c.on_message = on_message
        self.c.on_connect = lambda _c, _u, _f, rc, _p: self.result.put(rc.value)
        self.c.connect("localhost" if tls else "127.0.0.1", pi.tls_port if tls else pi.local_port)
        self.c.loop_start()
        self.code = self.result.get(timeout=5)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        done: queue.Queue[Any] = queue.Queue()
        self.c.on_subscribe = lambda _c, _u, _m, codes, _p: done.put(codes)
        self.c.subscribe(topic, qos=qos)
        done.get(timeout=5)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.c.publish(topic, payload, qos=qos)
        if qos:
            info.wait_for_publish(timeout=5)

    def take(self, n: int, wait: float = 5) -> list[tuple[str, bytes, int]]:
        out: list[tuple[str, bytes, int]] = []
        deadline = time.monotonic() + wait
        while len(out) < n and time.monotonic() < deadline:
            try:
                out.append(self.got.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                break
        return out

    def nothing(self, wait: float = 0.7) -> bool:
        return not self.take(1, wait)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def gateway(pi: ProvisionedBroker, clean: bool = False) -> Client:
    """The gateway as its service connects: fixed client id, persistent session."""
    gw = Client(pi, "gateway-mostar", pi.password("gateway-mostar"), clean=clean)
    assert gw.code == 0
    return gw


def bench(pi: ProvisionedBroker, bid: str = "mostar-01", client_id: str | None = None) -> Client:
    b = Client(pi, bid, pi.password(bid), client_id=client_id, tls=True)
    assert b.code == 0
    return b


def vote(seq: int) -> bytes:
    return json.dumps({"v": 1, "bench": "mostar-01", "boot": 7, "seq": seq}).encode()


# --------------------------------------------------------------------------- the files


def test_generated_conf_is_the_pi_conf_with_only_prefix_port_and_user_changed(
    pi: ProvisionedBroker,
) -> None:
    on_pi = (pi.dep.broker_dir("mostar") / "mosquitto.conf").read_text()
    started = render_broker_conf(pi.dep, pi.root, pi.local_port)
    back = started.replace(str(pi.root), "")
    back = back.replace(f"listener {pi.local_port} 127.0.0.1", "listener 1883 127.0.0.1")
    back = back.replace(f"user {getpass.getuser()}\n", "user mosquitto\n")
    assert back == on_pi
    for setting in (
        "per_listener_settings false",
        "allow_anonymous false",
        "upgrade_outgoing_qos true",
        "persistence true",
    ):
        assert re.search(rf"^{setting}$", on_pi, re.M), setting
    # Mosquitto sets use_username_as_clientid per listener: each listener has it.
    listeners = re.split(r"^listener ", on_pi, flags=re.M)[1:]
    assert len(listeners) == 2
    assert all("use_username_as_clientid true" in block for block in listeners)
    sizes = dict(re.findall(r"^(message_size_limit|max_packet_size) (\d+)$", on_pi, re.M))
    assert int(sizes["message_size_limit"]) == broker.MAX_POLL_PAYLOAD
    assert broker.MAX_POLL_PAYLOAD < int(sizes["max_packet_size"]) <= 2 * broker.MAX_POLL_PAYLOAD


def test_anonymous_clients_are_refused_on_both_listeners(pi: ProvisionedBroker) -> None:
    assert Client(pi, None).code != 0
    assert Client(pi, None, tls=True).code != 0


def test_a_bench_publishes_on_its_own_topics_and_nowhere_else(pi: ProvisionedBroker) -> None:
    gw = gateway(pi, clean=True)
    one, two = bench(pi, "mostar-01"), bench(pi, "mostar-02")
    try:
        gw.subscribe(f"{T}/#")
        two.subscribe(f"{T}/mostar-01/cmd")  # another bench's commands: never delivered
        one.publish(f"{T}/mostar-01/telemetry", b"own")
        assert gw.take(1) == [(f"{T}/mostar-01/telemetry", b"own", 1)]
        for forged in ("mostar-02/telemetry", "mostar-02/vote", "mostar-02/status"):
            one.publish(f"{T}/{forged}", b"forged")  # Mosquitto acknowledges, delivers nothing
        one.publish("klupa/v1/jablanica/jablanica-01/vote", b"forged")
        assert gw.nothing()
        gw.publish(f"{T}/mostar-01/cmd", b"for one")
        assert two.nothing()
    finally:
        for c in (gw, one, two):
            c.close()


def test_a_payload_over_the_poll_limit_never_reaches_the_gateway(pi: ProvisionedBroker) -> None:
    gw = gateway(pi, clean=True)
    one = bench(pi)
    try:
        gw.subscribe(f"{T}/+/telemetry")
        one.publish(f"{T}/mostar-01/telemetry", b"x" * (broker.MAX_POLL_PAYLOAD + 1))
        assert gw.nothing()
        one.publish(f"{T}/mostar-01/telemetry", b"y" * broker.MAX_POLL_PAYLOAD)
        assert [p for _, p, _ in gw.take(1)] == [b"y" * broker.MAX_POLL_PAYLOAD]
    finally:
        gw.close()
        one.close()


# --------------------------------------------------------------------------- finding 3


@pytest.mark.parametrize("via_tls", [True, False], ids=["bench listener", "loopback listener"])
def test_a_bench_credential_as_client_id_gateway_does_not_disturb_the_gateway_session(
    pi: ProvisionedBroker, via_tls: bool
) -> None:
    """Fails without `use_username_as_clientid true` on that listener: the forged clean
    session replaces the gateway's persistent one and the 5 queued votes are lost."""
    gw = gateway(pi)
    gw.subscribe(f"{T}/+/vote")
    gw.close()  # the gateway is down; the broker queues for its session
    one = bench(pi)
    for seq in range(1, 6):
        one.publish(f"{T}/mostar-01/vote", vote(seq))
    one.close()

    attacker = Client(
        pi, "mostar-01", pi.password("mostar-01"), client_id="gateway-mostar", tls=via_tls
    )
    assert attacker.code == 0  # connected, but as mostar-01
    attacker.close()

    back = gateway(pi)
    try:
        got = back.take(5)
        assert [json.loads(p)["seq"] for _, p, _ in got] == [1, 2, 3, 4, 5]
    finally:
        back.close()


def test_a_bench_qos0_flood_reaches_the_gateway_at_qos1_and_waits_in_its_queue(
    pi: ProvisionedBroker,
) -> None:
    """Fails without `upgrade_outgoing_qos true`: QoS 0 messages are neither bounded by the
    in-flight window nor queued for the gateway's session, so the 5 sent while it was away
    are gone and the rest arrive at QoS 0."""
    gw = gateway(pi)
    gw.subscribe(f"{T}/+/vote")
    gw.close()
    one = bench(pi)
    for seq in range(1, 6):
        one.publish(f"{T}/mostar-01/vote", vote(seq), qos=0)
    time.sleep(0.3)  # QoS 0 has no acknowledgement to wait for
    back = gateway(pi)
    try:
        got = back.take(5)
        assert [(json.loads(p)["seq"], qos) for _, p, qos in got] == [(s, 1) for s in range(1, 6)]
        one.publish(f"{T}/mostar-01/vote", vote(6), qos=0)
        assert [qos for _, _, qos in back.take(1)] == [1]
    finally:
        back.close()
        one.close()


def test_a_bench_qos0_flood_is_held_by_the_broker_beyond_the_in_flight_window(
    pi: ProvisionedBroker,
) -> None:
    """A gateway that has not acknowledged (its commit is slow) is sent at most
    max_inflight_messages of a QoS 0 flood; the rest wait in the broker and follow the acks.
    Fails without `upgrade_outgoing_qos true` (QoS 0 is never held back)."""
    conf = (pi.dep.broker_dir("mostar") / "mosquitto.conf").read_text()
    window = int(re.findall(r"^max_inflight_messages (\d+)$", conf, re.M)[0])
    flood = window + window // 2
    gw = Client(pi, "gateway-mostar", pi.password("gateway-mostar"), manual_ack=True)
    one = bench(pi)
    try:
        gw.subscribe(f"{T}/+/telemetry")
        for seq in range(flood):
            one.publish(f"{T}/mostar-01/telemetry", vote(seq), qos=0)
        got = gw.take(flood, wait=3)
        assert len(got) == window
        for mid in list(gw.unacked):
            gw.c.ack(mid, 1)
        got += gw.take(flood - window, wait=10)
        assert sorted(json.loads(p)["seq"] for _, p, _ in got) == list(range(flood))
    finally:
        gw.close()
        one.close()


def test_the_ops_user_sends_commands_and_reads_acks_and_nothing_else(pi: ProvisionedBroker) -> None:
    gw = gateway(pi, clean=True)
    ops = Client(pi, "ops-mostar", pi.password("ops-mostar"))
    assert ops.code == 0
    one = bench(pi)
    try:
        gw.subscribe(f"{T}/#")
        ops.subscribe(f"{T}/#")
        one.subscribe(f"{T}/mostar-01/cmd")
        one.subscribe(f"{T}/mostar-01/receipt")
        ops.publish(f"{T}/mostar-01/cmd", b'{"id":"c-1","op":"ping","args":{}}')
        assert [t for t, _, _ in one.take(1)] == [f"{T}/mostar-01/cmd"]
        assert [t for t, _, _ in gw.take(1)] == [f"{T}/mostar-01/cmd"]
        one.publish(f"{T}/mostar-01/cmd/ack", b'{"id":"c-1","ok":true}')
        assert [t for t, _, _ in ops.take(1)] == [f"{T}/mostar-01/cmd/ack"]
        gw.take(1)
        # Telemetry, votes, status and receipts are not the ops user's to read ...
        for topic in ("telemetry", "vote", "status"):
            one.publish(f"{T}/mostar-01/{topic}", b"private")
        gw.publish(f"{T}/mostar-01/receipt", b"{}")
        assert len(gw.take(4)) == 4
        assert ops.nothing()
        # ... nor to write: a forged record, receipt or poll reaches no one.
        for topic in ("mostar-01/telemetry", "mostar-01/vote", "mostar-01/receipt", "poll"):
            ops.publish(f"{T}/{topic}", b"forged")
        one.take(1, wait=0.3)  # the gateway's receipt above
        assert gw.nothing() and one.nothing()
    finally:
        for c in (gw, ops, one):
            c.close()


def test_klupa_gateway_cmd_connects_as_ops_with_the_password_beside_the_config(
    pi: ProvisionedBroker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_gateway.cli import main

    paths = broker.PiPaths("mostar", PurePosixPath(pi.root))
    cfg = Path(paths.gateway_config)
    cfg.write_text(
        f'municipality = "mostar"\n[mqtt]\nport = {pi.local_port}\n'
        f'username = "gateway-mostar"\npassword_file = "{paths.gateway_password}"\n'
        f'[spool]\npath = "{paths.store}"\n'
    )
    one = bench(pi)
    one.subscribe(f"{T}/mostar-01/cmd")

    def answer(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        cmd = json.loads(msg.payload)
        ack = {"v": 1, "bench": "mostar-01", "boot": 7, "seq": 1, "ts": int(time.time())}
        c.publish(f"{T}/mostar-01/cmd/ack", json.dumps(ack | {"id": cmd["id"], "ok": True}), 1)

    one.c.on_message = answer
    monkeypatch.delenv("KLUPA_OPS_PASSWORD", raising=False)
    try:
        assert main(["cmd", "--config", str(cfg), "mostar-01", "ping"]) == 0
        assert "mostar-01: ping ok" in capsys.readouterr().out
        # A wrong password is named with where it came from, in one line.
        monkeypatch.setenv("KLUPA_OPS_PASSWORD", "not-it")
        assert main(["cmd", "--config", str(cfg), "--timeout", "2", "mostar-01", "ping"]) == 1
        err = capsys.readouterr().err
        assert "did not let ops-mostar read" in err and "KLUPA_OPS_PASSWORD" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        one.close()
    assert "not-it" not in capsys.readouterr().err


def test_pi_paths_are_the_same_in_the_readme_docs_and_deploy(deployment: Deployment) -> None:
    repo = Path(__file__).resolve().parents[2]
    readme = (deployment.broker_dir("mostar") / "README.md").read_text()
    operations = (repo / "docs/operations.md").read_text()
    deploy = "\n".join(p.read_text() for p in sorted((repo / "deploy").rglob("*")) if p.is_file())
    paths = set(re.findall(r"(?<![\w.])/(?:etc|var|run|opt)/[\w./@%-]*[\w/]", readme))
    assert len(paths) >= 8, paths
    for path in sorted(paths):
        assert path in operations, f"{path} (brokers/mostar/README.md) not in docs/operations.md"
        templated = path.replace("mostar", "%i")
        assert path in deploy or templated in deploy, f"{path} is nowhere in deploy/"
    # deploy/'s examples are what provisioning writes, not a second copy that can drift.
    m = deployment.municipality("mostar")
    example = (repo / "deploy/mosquitto/mosquitto.conf.example").read_text()
    assert example == broker.mosquitto_conf("mostar", m.mqtt_port)
    acl = (repo / "deploy/mosquitto/acl.example").read_text()
    assert acl == broker.acl_text("mostar", ["mostar-01"])
    unit = (repo / "deploy/systemd/klupa-gateway@.service").read_text()
    for key in ("After", "Wants"):  # the gateway starts once the clock is synchronised
        assert re.search(rf"^{key}=.*\btime-sync\.target\b", unit, re.M), key
    example_cfg = tomllib.loads((repo / "deploy/gateway.example.toml").read_text())
    assert example_cfg["mqtt"]["username"] == broker.gateway_user("mostar")
    assert example_cfg["mqtt"]["password_file"] == str(broker.PiPaths("mostar").gateway_password)
    assert example_cfg["spool"]["path"] == str(broker.PiPaths("mostar").store)


def test_the_generated_readme_installs_every_file_with_commands_that_parse(
    deployment: Deployment,
) -> None:
    readme = (deployment.broker_dir("mostar") / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    assert len(blocks) == 2
    for block in blocks:
        check = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        assert "\n    &&" in block  # the continuation lines are continued, not run alone
    first = blocks[0]
    pi = broker.PiPaths("mostar")
    for name in broker.BROKER_FILES:
        assert re.search(rf" {re.escape(name)}[ \n]", first), name
    for src, dest in (
        ("mosquitto.conf", pi.mosquitto_conf),
        ("gateway-mqtt.pass", pi.gateway_password),
        ("ops-mqtt.pass", pi.ops_password),
    ):
        assert f"{src} {dest}" in first, src


def test_init_again_completes_a_folder_made_before_the_ops_user(deployment: Deployment) -> None:
    """A folder from before: no ops users, no mosquitto.conf, an older .gitignore."""
    from provisioning.create import create_deployment
    from provisioning.deployment import _render_secrets, write_private

    for mid in deployment.municipalities():
        deployment.secrets["mqtt"].pop(broker.ops_user(mid))
        folder = deployment.broker_dir(mid)
        passwd = folder / "passwd"
        passwd.write_text(
            "".join(ln for ln in passwd.read_text().splitlines(True) if not ln.startswith("ops-"))
        )
        for name in ("ops-mqtt.pass", "mosquitto.conf"):
            (folder / name).unlink()
    write_private(deployment.secrets_path, _render_secrets(deployment.secrets))
    gitignore = deployment.root / ".gitignore"
    gitignore.write_text(gitignore.read_text().replace("brokers/*/ops-mqtt.pass\n", ""))

    dep = create_deployment(deployment.root)  # verifies every municipality's files
    folder = dep.broker_dir("mostar")
    assert (folder / "ops-mqtt.pass").read_text().strip() == dep.mqtt_password("ops-mostar")
    assert broker.ops_acl("mostar") in (folder / "acl").read_text()
    assert "brokers/*/ops-mqtt.pass" in gitignore.read_text().splitlines()
