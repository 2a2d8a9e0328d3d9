"""The ``[influxdb]`` section: where and how the InfluxDB sink writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_gateway.config_reader import Reader, plain_http


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


KEYS = frozenset(
    {
        "url",
        "api_version",
        "org",
        "bucket",
        "token",
        "token_file",
        "database",
        "retention_policy",
        "create_database",
        "username",
        "password",
        "password_file",
        "batch_size",
        "flush_interval_s",
        "allow_plain_http",
    }
)
V1_ONLY = {"database", "retention_policy", "create_database", "username", "password"}
V2_ONLY = {"org", "bucket"}


def parse(r: Reader, base: Path) -> InfluxConfig:
    """The ``[influxdb]`` table; relative file paths are relative to ``base``."""
    t = r.table
    version = int(r.number("api_version", 2, 1, 2, integer=True))
    for key in V1_ONLY | {"password_file"} if version == 2 else V2_ONLY:
        if key in t:
            r.bad(key, f"not used with api_version = {version}")
    influx = InfluxConfig(
        url=r.url("url") or "",
        api_version=version,
        org=r.text("org", "") or "",
        bucket=r.text("bucket", "") or "",
        token=r.secret("token", "KLUPA_INFLUXDB_TOKEN", base, required=version == 2),
        database=r.text("database", "", required=version == 1) or "",
        retention_policy=r.text("retention_policy", "") or "",
        create_database=r.flag("create_database", True),
        username=r.text("username", "") or "",
        password=(r.secret("password", "KLUPA_INFLUXDB_PASSWORD", base) if version == 1 else None),
        batch_size=int(r.number("batch_size", 5000, 1, 1_000_000, integer=True)),
        flush_interval_s=r.number("flush_interval_s", 5, 0.01, 3600),
    )
    plain_http(r, influx.url, bool(influx.token or influx.password))
    if version == 2:
        if "org" not in t:
            r.bad("org", "required with api_version = 2")
        if "bucket" not in t:
            r.bad("bucket", "required with api_version = 2")
    return influx


def secrets(cfg: InfluxConfig) -> list[str | None]:
    return [cfg.token, cfg.password]
