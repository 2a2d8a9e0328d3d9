"""Configuration: each problem named by its key, exit codes, secrets kept out of logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_gateway.cli import main
from edge_gateway.config import ConfigError, load, parse
from klupa.services import Broker, free_port

GOOD = """
municipality = "mostar"
[mqtt]
host = "127.0.0.1"
port = 1883
username = "gateway-mostar"
password_file = "mqtt.pass"
[spool]
path = "store/mostar.sqlite"
retention_days = 35
max_mb = 2048
[influxdb]
url = "http://127.0.0.1:8086"
api_version = 2
org = "link"
bucket = "benches"
token = "influx-secret-token"
batch_size = 5000
flush_interval_s = 5
[portal]
url = "http://127.0.0.1:8080"
token_file = "portal.token"
poll_sync_s = 60
[health]
offline_after_s = 300
expected = ["mostar-01"]
[ota]
dir = "ota"
port = 8070
[metrics]
port = 9108
"""


@pytest.fixture
def cfgdir(tmp_path: Path) -> Path:
    (tmp_path / "mqtt.pass").write_text("mqtt-secret-pw\n")
    (tmp_path / "portal.token").write_text("portal-secret-token\n")
    (tmp_path / "ota").mkdir()
    return tmp_path


def write(d: Path, text: str) -> Path:
    p = d / "gateway.toml"
    p.write_text(text)
    return p


def problems(d: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(d, text))
    return info.value.problems


def test_the_documented_example_is_valid_and_reads_secret_files(cfgdir: Path) -> None:
    cfg = load(write(cfgdir, GOOD))
    assert cfg.municipality == "mostar"
    assert cfg.mqtt.client_id == "gateway-mostar"
    assert cfg.mqtt.password == "mqtt-secret-pw"
    assert cfg.portal is not None and cfg.portal.token == "portal-secret-token"
    assert cfg.influxdb is not None and cfg.influxdb.token == "influx-secret-token"
    assert cfg.spool.path == str(cfgdir / "store" / "mostar.sqlite")
    assert "secret" not in repr(cfg)


def test_each_bad_key_is_named_on_its_own_line(cfgdir: Path) -> None:
    text = (
        GOOD.replace("port = 1883", 'port = "1883"')
        .replace("retention_days = 35", "retention_dayz = 35")
        .replace("api_version = 2", "api_version = 3")
        .replace("offline_after_s = 300", "offline_after_s = -1")
        .replace('expected = ["mostar-01"]', 'expected = ["Mostar 01"]')
        + "[extra]\nx = 1\n"
    )
    found = problems(cfgdir, text)
    keys = [line.split(":")[0] for line in found]
    assert keys == [
        "extra",
        "spool.retention_dayz",
        "mqtt.port",
        "influxdb.api_version",
        "health.expected",
        "health.offline_after_s",
    ]


def test_unknown_key_in_a_section_is_an_error(cfgdir: Path) -> None:
    found = problems(cfgdir, GOOD.replace("bucket =", "bukket ="))
    assert "influxdb.bukket: unknown key" in found
    assert any(p.startswith("influxdb.bucket:") for p in found)


def test_missing_required_keys_and_files_are_named(cfgdir: Path) -> None:
    text = GOOD.replace('municipality = "mostar"', "").replace('dir = "ota"', 'dir = "nope"')
    text = text.replace('token_file = "portal.token"', 'token_file = "missing.token"')
    found = problems(cfgdir, text)
    assert "municipality: required" in found
    assert any(p.startswith("ota.dir: directory nope does not exist") for p in found)
    assert any(p.startswith("portal.token_file: file missing.token does not exist") for p in found)


def test_empty_or_newline_ended_names_and_paths_are_refused(cfgdir: Path) -> None:
    # An empty municipality would subscribe to klupa/v1//#, an empty spool path would open a
    # temporary database (nothing durable); "mostar\n" passes a `$`-anchored check.
    found = problems(
        cfgdir,
        GOOD.replace('municipality = "mostar"', 'municipality = ""').replace(
            'path = "store/mostar.sqlite"', 'path = ""'
        ),
    )
    assert "municipality: required, and must not be empty" in found
    assert "spool.path: required, and must not be empty" in found
    found = problems(cfgdir, GOOD.replace('municipality = "mostar"', 'municipality = "mostar\\n"'))
    assert [p.split(":")[0] for p in found] == ["municipality"]
    found = problems(
        cfgdir, GOOD.replace('expected = ["mostar-01"]', 'expected = ["mostar-01\\n"]')
    )
    assert [p.split(":")[0] for p in found] == ["health.expected"]


def test_secret_from_environment(cfgdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = GOOD.replace('token = "influx-secret-token"\n', "")
    assert any(p.startswith("influxdb.token:") for p in problems(cfgdir, text))
    monkeypatch.setenv("KLUPA_INFLUXDB_TOKEN", "from-env")
    cfg = load(write(cfgdir, text))
    assert cfg.influxdb is not None and cfg.influxdb.token == "from-env"


def test_check_exit_codes_and_one_line_per_problem(
    cfgdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(cfgdir, GOOD)
    assert main(["check", "--config", str(path)]) == 0
    assert "valid" in capsys.readouterr().out
    write(cfgdir, GOOD.replace("port = 9108", "port = 0").replace("[portal]", "[portl]"))
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "metrics.port" in " ".join(err) and "portl: unknown key" in " ".join(err)
    assert main(["check", "--config", str(cfgdir / "absent.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    (cfgdir / "bad.toml").write_text("municipality = \n")
    assert main(["check", "--config", str(cfgdir / "bad.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_run_exits_2_on_a_bad_config(cfgdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(cfgdir, GOOD.replace("[health]", "[healt]"))
    assert main(["run", "--config", str(path)]) == 2
    assert "healt: unknown key" in capsys.readouterr().err


def test_secrets_never_appear_in_the_log(cfgdir: Path, mosquitto: Broker, tmp_path: Path) -> None:
    """Run the real gateway with a portal and InfluxDB that refuse it; its log holds no secret."""
    text = (
        GOOD.replace("port = 1883", f"port = {mosquitto.port}")
        .replace("http://127.0.0.1:8086", "http://127.0.0.1:9")
        .replace("http://127.0.0.1:8080", "http://127.0.0.1:9")
        .replace("port = 8070", f"port = {free_port()}")
        .replace("port = 9108", f"port = {free_port()}")
        .replace("poll_sync_s = 60", "poll_sync_s = 1")
    ) + "[clock]\nrequire_sync = false\n"
    path = write(cfgdir, text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_gateway", "run", "--verbose", "--config", str(path)],
        stderr=subprocess.PIPE,
        env={**os.environ, "KLUPA_MQTT_PASSWORD": "unused-env-secret"},
    )
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    log = err.decode()
    assert proc.returncode == 0, log
    assert "connected to" in log  # anonymous broker accepts the credentials
    assert "will retry" in log or "could not fetch polls" in log
    for secret in ("mqtt-secret-pw", "portal-secret-token", "influx-secret-token"):
        assert secret not in log


# Any value TOML can hold, in place of any key's: a config may be hand-edited badly.
toml_leaf = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "\n", "mostar", "127.0.0.1", "mqtt.pass", "/nonexistent/x"]),
    st.datetimes(),
)
toml_value = st.recursive(
    toml_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_edit_of_a_config_is_valid_or_names_each_problem(
    cfgdir: Path, data: st.DataObject
) -> None:
    config = tomllib.loads(GOOD)
    section = data.draw(st.sampled_from(sorted(config)))
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    where: dict[str, Any] = config
    if isinstance(config[section], dict) and config[section] and data.draw(st.booleans()):
        where, key = config[section], data.draw(st.sampled_from(sorted(config[section])))
        if action == "add":
            key = data.draw(st.text(min_size=1, max_size=8))
    else:
        key = section if action != "add" else data.draw(st.text(min_size=1, max_size=8))
    if action == "delete":
        where.pop(key, None)
    else:
        where[key] = data.draw(toml_value)
    try:
        parse(config, cfgdir)
    except ConfigError as exc:
        assert exc.problems
        for line in exc.problems:
            name, sep, why = line.partition(": ")
            assert name and sep and why and len(line.splitlines()) == 1, line


def test_a_token_over_plain_http_to_another_machine_is_refused(cfgdir: Path) -> None:
    """A token sent unencrypted across a municipal network can be read on the way."""
    remote = GOOD.replace("http://127.0.0.1:8086", "http://influx.example.org:8086").replace(
        "http://127.0.0.1:8080", "http://portal.example.org"
    )
    found = problems(cfgdir, remote)
    assert [p.split(":")[0] for p in found] == ["influxdb.url", "portal.url"]
    assert "allow_plain_http" in found[0] and "https://" in found[0]
    allowed = remote.replace(
        "flush_interval_s = 5\n", "flush_interval_s = 5\nallow_plain_http = true\n"
    )
    allowed = allowed.replace("poll_sync_s = 60\n", "poll_sync_s = 60\nallow_plain_http = true\n")
    assert load(write(cfgdir, allowed)).influxdb is not None
    https = remote.replace("http://", "https://")
    assert load(write(cfgdir, https)).portal is not None
    assert load(write(cfgdir, GOOD)).influxdb is not None  # loopback: plain http is fine


def test_clock_section(cfgdir: Path) -> None:
    assert load(write(cfgdir, GOOD)).clock.require_sync is True
    off = load(write(cfgdir, GOOD + "[clock]\nrequire_sync = false\n"))
    assert off.clock.require_sync is False
    assert problems(cfgdir, GOOD + '[clock]\nrequire_sync = "no"\n') == [
        "clock.require_sync: must be true or false (got str)"
    ]
