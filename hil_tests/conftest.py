"""System (HIL) scenarios: against virtual benches by default, or a real bench and broker.

`pytest hil_tests --port /dev/ttyUSB0 --broker HOST:PORT` points the scenarios that can run
on hardware at a real bench; those that need control of the physics (sun, battery, Wi-Fi,
power) skip there, with the reason.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("klupa hil")
    group.addoption("--port", default=None, help="serial port of a real bench (default: virtual)")
    group.addoption("--broker", default=None, help="HOST:PORT of the real bench's broker")


@pytest.fixture
def real_bench(request: pytest.FixtureRequest) -> str | None:
    port: str | None = request.config.getoption("--port")
    return port


@pytest.fixture
def needs_physics(real_bench: str | None) -> None:
    if real_bench:
        pytest.skip(
            "needs control of the bench's physics, which a real bench on a port does not give"
        )
