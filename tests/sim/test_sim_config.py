"""`klupa sim` and the flash it keeps between runs: a bench kept from an earlier run keeps its
config as a provisioned bench does, unless the sim wrote it, then it follows --broker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from klupa.sim.bench import BenchSpec, bench_config, config_to_write
from klupa.sim.fleet import broker_address

SPEC = BenchSpec(bench="mostar-01", municipality="mostar")


def test_a_new_bench_gets_a_config_for_this_broker(tmp_path: Path) -> None:
    cfg = config_to_write(tmp_path, SPEC, "127.0.0.1:18840")
    assert cfg is not None
    assert cfg["mqtt"] == {"host": "127.0.0.1", "port": 18840, "user": "mostar-01", "password": ""}
    assert (cfg["bench"], cfg["municipality"], cfg["ntp"]) == ("mostar-01", "mostar", "127.0.0.1")


def test_a_config_the_sim_wrote_follows_a_new_broker(tmp_path: Path) -> None:
    # `klupa demo --dir X` starts its broker on a new port each run and keeps X/benches.
    first = config_to_write(tmp_path, SPEC, "127.0.0.1:18830")
    assert first is not None
    first["period"] = 120
    (tmp_path / "config.json").write_text(json.dumps(first))
    assert config_to_write(tmp_path, SPEC, "127.0.0.1:18830") is None  # same broker: untouched
    moved = config_to_write(tmp_path, SPEC, "127.0.0.1:18931")
    assert moved is not None and moved["period"] == 120
    assert (moved["mqtt"]["host"], moved["mqtt"]["port"]) == ("127.0.0.1", 18931)


def test_a_provisioned_config_is_kept_and_the_sim_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As a provisioned bench keeps what provisioning wrote (hil_tests boot a provisioned flash
    # folder with --broker pointing elsewhere): kept, and the sim names both brokers.
    provisioned = bench_config(SPEC, "10.0.0.5", 8883) | {
        "mqtt": {"host": "10.0.0.5", "port": 8883, "tls": True}
    }
    (tmp_path / "config.json").write_text(json.dumps(provisioned))
    assert config_to_write(tmp_path, SPEC, "127.0.0.1:18830") is None
    err = capsys.readouterr().err
    assert "10.0.0.5:8883" in err and "127.0.0.1:18830" in err


def test_a_damaged_config_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    cfg = config_to_write(tmp_path, SPEC, "127.0.0.1:1883")
    assert cfg is not None and cfg["mqtt"]["port"] == 1883


def test_broker_address_is_host_and_port() -> None:
    assert broker_address("127.0.0.1:1883") == "127.0.0.1:1883"
    for bad in ("nonsense", ":1883", "host:", "host:0", "host:65536", "host:http"):
        with pytest.raises(argparse.ArgumentTypeError, match="HOST:PORT"):
            broker_address(bad)
