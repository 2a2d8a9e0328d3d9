"""The InfluxDB sink: every record as points of docs/interfaces.md's schema (``[influxdb]``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edge_gateway.sinks import SinkKind
from edge_gateway.sinks.influxdb import config

if TYPE_CHECKING:
    from edge_gateway.sinks.base import Sink


def build(
    store_path: str, municipality: str, cfg: config.InfluxConfig, names: Sequence[str]
) -> Sink:
    from edge_gateway.sinks.influxdb.writer import InfluxSink  # loads influxdb-client

    return InfluxSink(store_path, municipality, cfg, names)


SINK = SinkKind("influxdb", config.KEYS, config.parse, config.secrets, build)
