"""The portal sink: votes, bench-days and bench state to the portal's API (``[portal]``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edge_gateway.sinks import SinkKind
from edge_gateway.sinks.portal import config

if TYPE_CHECKING:
    from edge_gateway.sinks.base import Sink


def build(
    store_path: str, municipality: str, cfg: config.PortalConfig, names: Sequence[str]
) -> Sink:
    from edge_gateway.sinks.portal.writer import PortalSink

    return PortalSink(store_path, municipality, cfg)


SINK = SinkKind("portal", config.KEYS, config.parse, config.secrets, build)
