"""Each service fixture starts the real program: prove it by using it the way the system does."""

from __future__ import annotations

import queue
import ssl
import time
import urllib.request
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest

from testkit.services import SECURE_USERS, Broker, Influx1, Victoria


def connect(
    broker: Broker,
    client_id: str,
    user: str | None = None,
    password: str | None = None,
    tls: bool = False,
) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage], mqtt.ReasonCode]:
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    connected: queue.Queue[mqtt.ReasonCode] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    if user:
        client.username_pw_set(user, password)
    if tls:
        assert broker.ca_file is not None
        client.tls_set(ca_certs=str(broker.ca_file), cert_reqs=ssl.CERT_REQUIRED)
    client.on_message = lambda c, u, msg: inbox.put(msg)
    client.on_connect = lambda c, u, flags, rc, props: connected.put(rc)
    port = broker.tls_port if tls and broker.tls_port else broker.port
    client.connect(broker.host, port, keepalive=30)
    client.loop_start()
    rc = connected.get(timeout=10)
    return client, inbox, rc


def subscribe(client: mqtt.Client, topic: str) -> None:
    done: queue.Queue[bool] = queue.Queue()
    client.on_subscribe = lambda c, u, mid, rcs, props: done.put(True)
    client.subscribe(topic, qos=1)
    done.get(timeout=10)


def test_mosquitto_delivers_a_published_message(mosquitto: Broker) -> None:
    sub, inbox, rc = connect(mosquitto, "sub")
    assert not rc.is_failure
    subscribe(sub, "klupa/v1/mostar/+/telemetry")
    pub, _, _ = connect(mosquitto, "pub")
    pub.publish("klupa/v1/mostar/mostar-01/telemetry", b'{"v":1}', qos=1).wait_for_publish(5)
    msg = inbox.get(timeout=5)
    assert msg.topic == "klupa/v1/mostar/mostar-01/telemetry"
    assert msg.payload == b'{"v":1}'
    for c in (sub, pub):
        c.loop_stop()
        c.disconnect()


def test_mosquitto_restart_keeps_retained_messages(mosquitto: Broker) -> None:
    pub, _, _ = connect(mosquitto, "pub")
    pub.publish("klupa/v1/mostar/poll", b'{"v":1,"id":null}', qos=1, retain=True).wait_for_publish(
        5
    )
    pub.loop_stop()
    pub.disconnect()
    mosquitto.restart()  # a clean stop saves the persistence file
    sub, inbox, _ = connect(mosquitto, "sub")
    subscribe(sub, "klupa/v1/mostar/poll")
    assert inbox.get(timeout=5).payload == b'{"v":1,"id":null}'
    sub.loop_stop()
    sub.disconnect()


def test_secure_broker_refuses_a_wrong_password(mosquitto_secure: Broker) -> None:
    client, _, rc = connect(mosquitto_secure, "mostar-01", "mostar-01", "not-the-password")
    assert rc.is_failure
    client.loop_stop()


def test_secure_broker_acl_denies_another_benchs_topic(mosquitto_secure: Broker) -> None:
    gw, inbox, rc = connect(
        mosquitto_secure, "gateway-mostar", "gateway-mostar", SECURE_USERS["gateway-mostar"]
    )
    assert not rc.is_failure
    subscribe(gw, "klupa/v1/mostar/#")
    bench, _, rc = connect(mosquitto_secure, "mostar-01", "mostar-01", SECURE_USERS["mostar-01"])
    assert not rc.is_failure
    # Mosquitto acknowledges a denied publish, so denial shows only as the message never arriving.
    bench.publish("klupa/v1/mostar/mostar-02/telemetry", b"forged", qos=1).wait_for_publish(5)
    bench.publish("klupa/v1/mostar/mostar-01/telemetry", b"own", qos=1).wait_for_publish(5)
    got = inbox.get(timeout=5)
    assert (got.topic, got.payload) == ("klupa/v1/mostar/mostar-01/telemetry", b"own")
    time.sleep(0.3)
    assert inbox.empty(), "the forged publish to another bench's topic was delivered"
    for c in (gw, bench):
        c.loop_stop()
        c.disconnect()


def test_secure_broker_tls_listener_verifies_with_the_run_ca(mosquitto_secure: Broker) -> None:
    sub, inbox, rc = connect(
        mosquitto_secure,
        "gateway-mostar",
        "gateway-mostar",
        SECURE_USERS["gateway-mostar"],
        tls=True,
    )
    assert not rc.is_failure
    subscribe(sub, "klupa/v1/mostar/+/status")
    pub, _, rc = connect(
        mosquitto_secure, "mostar-01", "mostar-01", SECURE_USERS["mostar-01"], tls=True
    )
    assert not rc.is_failure
    pub.publish("klupa/v1/mostar/mostar-01/status", b"online", qos=1).wait_for_publish(5)
    assert inbox.get(timeout=5).payload == b"online"
    for c in (sub, pub):
        c.loop_stop()
        c.disconnect()


def test_influxd_1x_writes_and_reads_back_a_point(influxdb1: Influx1) -> None:
    influxdb1.query("CREATE DATABASE probe")
    line = b'power,municipality=mostar,bench=mostar-01 batt_soc=78.5,state="normal" 1795712460'
    req = urllib.request.Request(
        f"{influxdb1.url}/write?db=probe&precision=s", data=line, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
    rows = influxdb1.rows('SELECT batt_soc, "state" FROM power', "probe")
    assert rows == [{"time": 1795712460, "batt_soc": 78.5, "state": "normal"}]


def test_victoria_metrics_accepts_the_influxdb_v2_client(victoria_metrics: Victoria) -> None:
    from influxdb_client import InfluxDBClient, Point
    from influxdb_client.client.write_api import SYNCHRONOUS

    ts = int(time.time()) - 60
    with InfluxDBClient(url=victoria_metrics.url, token="unused", org="link") as client:
        write = client.write_api(write_options=SYNCHRONOUS)
        point = (
            Point("power")
            .tag("municipality", "mostar")
            .tag("bench", "mostar-01")
            .field("batt_soc", 78.5)
            .time(ts, write_precision="s")
        )
        write.write(bucket="benches", record=point, write_precision="s")
    series = victoria_metrics.export('{__name__="power_batt_soc"}')
    assert len(series) == 1
    assert series[0]["metric"]["bench"] == "mostar-01"
    assert series[0]["values"] == [78.5]
    assert series[0]["timestamps"] == [ts * 1000]


def test_a_missing_program_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from testkit import services

    monkeypatch.setenv(services.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no-such-klupa-program is not installed"):
        services.need_program("no-such-klupa-program")
    monkeypatch.setenv(services.REQUIRE_ENV, "0")
    with pytest.raises(pytest.skip.Exception, match="no-such-klupa-program is not installed"):
        services.need_program("no-such-klupa-program")


def test_factory_accepts_custom_acl(mosquitto_factory: Callable[..., Broker]) -> None:
    broker = mosquitto_factory(
        passwords={"a-bench": "pw"}, acl="user a-bench\ntopic read x/#\n", tls=False
    )
    client, _, rc = connect(broker, "a-bench", "a-bench", "pw")
    assert not rc.is_failure
    assert broker.tls_port is None
    client.loop_stop()
    client.disconnect()
