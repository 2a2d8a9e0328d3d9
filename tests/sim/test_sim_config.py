"""`klupa sim` and the flash it keeps between runs: a bench kept from an earlier run keeps its
config, as a provisioned bench does, and the sim says when its broker is not --broker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from klupa.sim import BenchSpec, broker_address, config_to_write

SPEC = BenchSpec(bench="mostar-01", municipality="mostar")


def test_a_new_bench_gets_a_config_for_this_broker(tmp_path: Path) -> None:
    cfg = config_to_write(tmp_path, SPEC, "127.0.0.1:18840")
    assert cfg is not None
    assert cfg["mqtt"] == {"host": "127.0.0.1", "port": 18840, "user": "mostar-01", "password": ""}
    assert (cfg["bench"], cfg["municipality"], cfg["ntp"]) == ("mostar-01", "mostar", "127.0.0.1")


def test_a_kept_bench_keeps_its_config_and_says_so_when_its_broker_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As a provisioned bench keeps what provisioning wrote (hil_tests boot a provisioned flash
    # folder with --broker pointing elsewhere): kept, and the sim names both brokers.
    old = config_to_write(tmp_path, SPEC, "127.0.0.1:18830")
    assert old is not None
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert config_to_write(tmp_path, SPEC, "127.0.0.1:18830") is None
    assert capsys.readouterr().err == ""
    assert config_to_write(tmp_path, SPEC, "10.0.0.5:1883") is None
    err = capsys.readouterr().err
    assert "127.0.0.1:18830" in err and "10.0.0.5:1883" in err


def test_a_damaged_config_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    cfg = config_to_write(tmp_path, SPEC, "127.0.0.1:1883")
    assert cfg is not None and cfg["mqtt"]["port"] == 1883


def test_broker_address_is_host_and_port() -> None:
    assert broker_address("127.0.0.1:1883") == "127.0.0.1:1883"
    for bad in ("nonsense", ":1883", "host:", "host:0", "host:65536", "host:http"):
        with pytest.raises(argparse.ArgumentTypeError, match="HOST:PORT"):
            broker_address(bad)
