"""Every sink the gateway has, in the order the config lists its tables and the forwarder
starts them. A new sink is a folder under ``edge_gateway/sinks/``, imported here and
listed on its own line."""

from __future__ import annotations

from edge_gateway.sinks import SinkKind, influxdb, portal

SINKS: tuple[SinkKind, ...] = (
    influxdb.SINK,
    portal.SINK,
)
