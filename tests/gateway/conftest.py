"""Fixtures for the gateway tests: a gateway in this process, on a config written per test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.config import load
from edge_gateway.service import Gateway
from testkit.gateway import RecordingPortal, wait_until, write_config


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def make(
        broker_port: int,
        extra: str = "",
        municipality: str = "mostar",
        sink_options: dict[str, dict[str, Any]] | None = None,
    ) -> Gateway:
        n = len(started)
        cfg_path = write_config(
            tmp_path / f"gw{n}.toml",
            municipality,
            broker_port,
            tmp_path / f"store{n}.sqlite",
            extra,
        )
        gw = Gateway(load(cfg_path))
        gw.sink_options.update(sink_options or {})
        gw.start()
        wait_until(gw.connected.is_set, 10, what="the gateway to connect")
        time.sleep(0.2)  # the subscriptions are in place after the broker's SUBACK
        started.append(gw)
        return gw

    yield make
    for gw in started:
        if not gw.closing:
            gw.stop(flush_s=2)


@pytest.fixture
def portal() -> Iterator[RecordingPortal]:
    p = RecordingPortal()
    yield p
    p.httpd.shutdown()
    p.httpd.server_close()
