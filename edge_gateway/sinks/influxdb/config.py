"""The ``[influxdb]`` section: where and how the InfluxDB sink writes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InfluxConfig:
    url: str
    api_version: int = 2
    org: str = ""
    bucket: str = ""
    token: str | None = field(default=None, repr=False)
    database: str = ""
    retention_policy: str = ""
    create_database: bool = True
    username: str = ""
    password: str | None = field(default=None, repr=False)
    batch_size: int = 5000
    flush_interval_s: float = 5
