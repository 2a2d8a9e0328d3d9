"""Sinks: each forwards the store's rows past its own watermark, batched, with its own retries.

One sink down never stalls another or the ingest: the sinks run in the forwarder process
(:mod:`edge_gateway.forwarder`), each in its own thread on its own store connection.

Each sink is a folder here, as Telegraf's outputs are: its ``config`` (its TOML table, parsed
into its dataclass), its ``writer`` (a :class:`~edge_gateway.sinks.base.Sink`) and whatever
else it needs (the InfluxDB sink's ``points``); its ``__init__`` describes it in a
:class:`SinkKind`. :mod:`edge_gateway.sinks.registry` lists them, and the config parser and the
forwarder read that list: adding a sink is a new folder and one line there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_gateway.config_reader import Reader
    from edge_gateway.sinks.base import Sink


@dataclass(frozen=True)
class SinkKind:
    """What the registry knows of one sink."""

    # The sink's name: its TOML table ``[name]``, its watermark's key, its log and metrics name.
    name: str
    # The keys its table may hold (any other is a problem that names it).
    keys: frozenset[str]
    # Its table read into its config dataclass; problems are noted on the reader.
    parse: Callable[[Reader, Path], Any]
    # The secret values of its config in force, so that a log filter can blank them.
    secrets: Callable[[Any], list[str | None]]
    # Its writer thread: (store path, municipality, its config, every configured sink's name).
    # Called in the forwarder process only, so a config check never loads a sink's client.
    build: Callable[[str, str, Any, Sequence[str]], Sink]
