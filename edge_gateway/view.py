"""What the gateway's companions read of it: the poll sync, the alert rules, ``/metrics``.

They are given the running :class:`~edge_gateway.service.Gateway`, which starts them, and know
it only as this :class:`GatewayView`; so they never import the service that imports them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

from edge_gateway.config import Config
from edge_gateway.forwarder import SinkView
from edge_gateway.health import Health


class Heartbeats(Protocol):
    @property
    def beat_ok_at(self) -> float:
        """When the portal last took the gateway's heartbeat."""


class GatewayView(Protocol):
    @property
    def cfg(self) -> Config: ...
    @property
    def m(self) -> str: ...
    @property
    def counts(self) -> Mapping[str, int]: ...
    @property
    def commits(self) -> int: ...
    @property
    def started(self) -> float: ...
    @property
    def health(self) -> Health: ...
    @property
    def sinks(self) -> Sequence[SinkView]: ...
    @property
    def store_state(self) -> str:
        """``ok``, or why the store cannot write (``disk_full``, ``error``)."""

    @property
    def connected(self) -> threading.Event: ...
    @property
    def clock_ok(self) -> threading.Event: ...
    @property
    def generation(self) -> int:
        """The broker connection's number (a reconnect counts one more)."""

    @property
    def poll_topic(self) -> str: ...
    @property
    def poll_sync(self) -> Heartbeats | None: ...

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None: ...
