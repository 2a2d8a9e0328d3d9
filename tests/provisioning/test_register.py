"""`register` against a real Mosquitto loaded with the files it writes."""

from __future__ import annotations

import queue
import subprocess

import paho.mqtt.client as mqtt
import pytest

from provisioning import broker
from provisioning.deployment import Deployment
from provisioning.steps import Run, step_register
from testkit.services import need_program

T = "klupa/v1/mostar"


def _client(port: int, user: str, password: str) -> tuple[mqtt.Client, queue.Queue]:
    got: queue.Queue = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user)
    c.username_pw_set(user, password)
    c.on_message = lambda _c, _u, msg: got.put((msg.topic, msg.payload))
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


def _connect_code(port: int, user: str, password: str) -> int:
    result: queue.Queue = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user + "-probe")
    c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, rc, _p: result.put(rc.value)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        return int(result.get(timeout=5))
    finally:
        c.loop_stop()
        c.disconnect()


def _subscribe(c: mqtt.Client, topic: str) -> None:
    done: queue.Queue = queue.Queue()
    c.on_subscribe = lambda _c, _u, _m, codes, _p: done.put(codes)
    c.subscribe(topic, qos=1)
    done.get(timeout=5)


def _publish(c: mqtt.Client, topic: str, payload: bytes) -> None:
    c.publish(topic, payload, qos=1).wait_for_publish(timeout=5)


def _nothing(q: queue.Queue, wait: float = 0.7) -> bool:
    try:
        q.get(timeout=wait)
    except queue.Empty:
        return True
    return False


@pytest.fixture
def registered(deployment: Deployment) -> Deployment:
    for bid in ("mostar-01", "mostar-02"):
        text = deployment.inventory_path.read_text()
        if f"[benches.{bid}]" not in text:
            deployment.inventory_path.write_text(
                text + f'\n[benches.{bid}]\nmunicipality = "mostar"\nboard = "bench-v1"\n'
            )
            deployment.reload()
        run = Run(dep=deployment, port="-", bench=deployment.bench(bid))
        run.facts.update(mac="24:0a:c4:00:00:01", chip="ESP32", micropython="1.27.0", app="1.0.0")
        step_register(run)
    return deployment


def test_register_writes_hash_acl_record_and_label(registered: Deployment) -> None:
    dep = registered
    users = broker.read_passwd(dep.broker_dir("mostar") / "passwd")
    assert set(users) == {"gateway-mostar", "ops-mostar", "mostar-01", "mostar-02"}
    assert users["mostar-01"].startswith("$7$101$")
    assert broker.verify_password(dep.mqtt_password("mostar-01") or "", users["mostar-01"])
    rec = dep.bench("mostar-01").provisioned
    assert rec["mac"] == "24:0a:c4:00:00:01" and rec["app"] == "1.0.0" and rec["at"]
    acl = (dep.broker_dir("mostar") / "acl").read_text()
    assert "topic write klupa/v1/mostar/mostar-01/telemetry" in acl
    assert "topic read klupa/v1/mostar/mostar-01/cmd" in acl


def test_register_again_changes_nothing_but_the_time(registered: Deployment) -> None:
    passwd = registered.broker_dir("mostar") / "passwd"
    before = passwd.read_text()
    run = Run(dep=registered, port="-", bench=registered.bench("mostar-01"))
    run.facts.update(mac="24:0a:c4:00:00:01", chip="ESP32", micropython="1.27.0", app="1.0.0")
    step_register(run)
    assert passwd.read_text() == before
    assert registered.inventory_path.read_text().count("[benches.mostar-01.provisioned]") == 1


def test_hash_format_is_what_mosquitto_passwd_writes(tmp_path) -> None:
    tool = need_program("mosquitto_passwd")
    f = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(f), "u", "s3cret pass"], check=True)
    theirs = f.read_text().strip().split(":", 1)[1]
    assert broker.verify_password("s3cret pass", theirs)
    assert not broker.verify_password("wrong", theirs)
    prefix = theirs.rsplit("$", 2)[0]
    ours = broker.hash_password("s3cret pass")
    assert ours.rsplit("$", 2)[0] == prefix  # same scheme and iteration count
    assert len(ours) == len(theirs)


def test_bench_credentials_work_and_stay_within_own_topics(
    registered: Deployment, mosquitto_factory
) -> None:
    dep = registered
    folder = dep.broker_dir("mostar")
    b = mosquitto_factory(password_file=folder / "passwd", acl_file=folder / "acl", tls=False)
    gw, gw_got = _client(b.port, "gateway-mostar", dep.mqtt_password("gateway-mostar") or "")
    one, one_got = _client(b.port, "mostar-01", dep.mqtt_password("mostar-01") or "")
    two, two_got = _client(b.port, "mostar-02", dep.mqtt_password("mostar-02") or "")
    try:
        _subscribe(gw, f"{T}/#")
        for topic in ("cmd", "receipt"):
            _subscribe(one, f"{T}/mostar-01/{topic}")
        _subscribe(one, f"{T}/poll")
        _subscribe(two, f"{T}/mostar-02/cmd")
        _subscribe(two, f"{T}/mostar-01/cmd")  # another bench's cmd: must never arrive

        _publish(one, f"{T}/mostar-01/telemetry", b"own")
        assert gw_got.get(timeout=5) == (f"{T}/mostar-01/telemetry", b"own")

        for topic in ("mostar-01/cmd", "mostar-01/receipt", "poll"):
            _publish(gw, f"{T}/{topic}", topic.encode())
            assert one_got.get(timeout=5) == (f"{T}/{topic}", topic.encode())
        assert _nothing(two_got)  # mostar-02 saw neither mostar-01's cmd nor anything else
        own = [gw_got.get(timeout=5) for _ in range(3)]  # the gateway's own three, echoed
        assert sorted(t for t, _ in own) == sorted(
            f"{T}/{x}" for x in ("mostar-01/cmd", "mostar-01/receipt", "poll")
        )

        # Publishing as another bench: Mosquitto acks, but the gateway never receives it.
        _publish(one, f"{T}/mostar-02/telemetry", b"forged")
        _publish(one, f"{T}/mostar-02/vote", b"forged")
        _publish(one, "klupa/v1/jablanica/jablanica-01/telemetry", b"forged")
        assert _nothing(gw_got)
    finally:
        for c in (gw, one, two):
            c.loop_stop()
            c.disconnect()


def test_wrong_password_is_refused(registered: Deployment, mosquitto_factory) -> None:
    folder = registered.broker_dir("mostar")
    b = mosquitto_factory(password_file=folder / "passwd", acl_file=folder / "acl", tls=False)
    assert _connect_code(b.port, "mostar-01", "not-the-password") != 0
    assert _connect_code(b.port, "mostar-01", registered.mqtt_password("mostar-01") or "") == 0


@pytest.mark.parametrize("bid", ["ops-x", "gateway-x", "gateway-mostar", "ops-mostar"])
def test_register_refuses_a_bench_id_of_the_gateways_or_command_tools_users(
    deployment: Deployment, bid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bench so named would get (and put on its board) the gateway's or ops user's password
    and its ACL; docs/protocol.md, Names: bench ids never begin with `gateway-` or `ops-`."""
    from provisioning.cli import main

    text = deployment.inventory_path.read_text()
    deployment.inventory_path.write_text(
        text + f'\n[benches.{bid}]\nmunicipality = "mostar"\nboard = "bench-v1"\n'
    )
    passwd = deployment.broker_dir("mostar") / "passwd"
    before = passwd.read_text()
    code = main(["register", "--bench", bid, "--deploy", str(deployment.root)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"bench id {bid!r} is reserved" in err and "'gateway-' or 'ops-'" in err
    assert passwd.read_text() == before
