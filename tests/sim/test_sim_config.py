"""`klupa sim` and the flash it keeps between runs: a bench kept from an earlier run keeps its
config, but follows this run's --broker."""

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


def test_a_kept_bench_follows_a_new_broker_and_keeps_the_rest(tmp_path: Path) -> None:
    old = config_to_write(tmp_path, SPEC, "127.0.0.1:18830")
    assert old is not None
    old["period"] = 120  # what an earlier run (or the technician) set
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert config_to_write(tmp_path, SPEC, "127.0.0.1:18830") is None  # same broker: untouched
    moved = config_to_write(tmp_path, SPEC, "10.0.0.5:1883")
    assert moved is not None
    assert (moved["mqtt"]["host"], moved["mqtt"]["port"], moved["ntp"]) == (
        "10.0.0.5",
        1883,
        "10.0.0.5",
    )
    assert moved["period"] == 120 and moved["mqtt"]["user"] == "mostar-01"


def test_a_damaged_config_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    cfg = config_to_write(tmp_path, SPEC, "127.0.0.1:1883")
    assert cfg is not None and cfg["mqtt"]["port"] == 1883


def test_broker_address_is_host_and_port() -> None:
    assert broker_address("127.0.0.1:1883") == "127.0.0.1:1883"
    for bad in ("nonsense", ":1883", "host:", "host:0", "host:65536", "host:http"):
        with pytest.raises(argparse.ArgumentTypeError, match="HOST:PORT"):
            broker_address(bad)
