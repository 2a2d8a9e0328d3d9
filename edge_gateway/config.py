"""The gateway's TOML configuration, exactly as docs/interfaces.md lists it.

:func:`load` returns a :class:`Config` or raises :class:`ConfigError` whose ``problems`` are
one line each, every line naming its key (``mqtt.port: …``). Unknown keys are problems: a typo
must not silently switch forwarding off. Secrets come from the key, its ``*_file`` twin or a
``KLUPA_*`` environment variable; they never appear in a repr, a problem line or the log.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_gateway.config_reader import Reader, plain_http
from edge_gateway.protocol import BENCH_RE, MUNICIPALITY_RE
from edge_gateway.sinks.influxdb.config import InfluxConfig
from edge_gateway.sinks.portal.config import PortalConfig
from edge_gateway.text import printable
from klupa.notify import NotifyConfig

BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    certfile: str | None = None
    keyfile: str | None = None


@dataclass
class SpoolConfig:
    path: str
    retention_days: float = 35
    max_mb: float = 2048


@dataclass
class HealthConfig:
    offline_after_s: float = 300
    expected: list[str] = field(default_factory=list)


@dataclass
class OtaConfig:
    dir: str
    port: int = 8070


@dataclass
class MetricsConfig:
    port: int = 9108


@dataclass
class AlertsConfig(NotifyConfig):
    """The channel keys (klupa.notify) and the gateway's own rule thresholds."""

    evaluate_s: float = 30
    lag_s: float = 3600
    backlog_rows: int = 50_000
    disk_free_mb: float = 200
    wet_after_s: float = 3600


@dataclass
class ClockConfig:
    require_sync: bool = True


@dataclass
class Config:
    municipality: str
    mqtt: MqttConfig
    spool: SpoolConfig
    influxdb: InfluxConfig | None = None
    portal: PortalConfig | None = None
    health: HealthConfig = field(default_factory=HealthConfig)
    ota: OtaConfig | None = None
    metrics: MetricsConfig | None = None
    clock: ClockConfig = field(default_factory=ClockConfig)
    alerts: AlertsConfig | None = None
    path: str = ""

    def secrets(self) -> list[str]:
        """Every secret value in force, so a log filter can blank them."""
        out = [self.mqtt.password]
        if self.influxdb:
            out += [self.influxdb.token, self.influxdb.password]
        if self.portal:
            out.append(self.portal.token)
        if self.alerts:
            out += [self.alerts.smtp_password, self.alerts.webhook_token]
        return [s for s in out if s]


SECTIONS: dict[str, set[str]] = {
    "mqtt": {
        "host",
        "port",
        "client_id",
        "username",
        "password",
        "password_file",
        "tls",
        "ca_file",
        "certfile",
        "keyfile",
    },
    "spool": {"path", "retention_days", "max_mb"},
    "influxdb": {
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
    },
    "portal": {"url", "token", "token_file", "poll_sync_s", "allow_plain_http"},
    "health": {"offline_after_s", "expected"},
    "ota": {"dir", "port"},
    "metrics": {"port"},
    "clock": {"require_sync"},
    "alerts": {
        "repeat_h",
        "quiet_hours",
        "evaluate_s",
        "smtp_host",
        "smtp_port",
        "smtp_starttls",
        "smtp_ca_file",
        "smtp_user",
        "smtp_password",
        "smtp_password_file",
        "mail_from",
        "mail_to",
        "webhook_url",
        "webhook_token",
        "webhook_token_file",
        "allow_plain_http",
        "lag_s",
        "backlog_rows",
        "disk_free_mb",
        "wet_after_s",
    },
}
V1_ONLY = {"database", "retention_policy", "create_database", "username", "password"}
V2_ONLY = {"org", "bucket"}


def _toml_key(key: str) -> str:
    """A key as TOML writes it: bare, or quoted with escapes (so a problem stays one line)."""
    if BARE_KEY_RE.fullmatch(key):
        return key
    return json.dumps(key)


def parse(data: Mapping[str, Any], base: Path, env_path: str = "") -> Config:
    """Build a Config from parsed TOML; relative file paths are relative to ``base``."""
    problems: list[str] = []
    for key, value in data.items():
        if key == "municipality":
            continue
        if key not in SECTIONS:
            problems.append(f"{_toml_key(key)}: unknown key")
        elif not isinstance(value, dict):
            problems.append(f"{key}: must be a table [{key}]")
    for name, allowed in SECTIONS.items():
        given = data.get(name)
        if isinstance(given, dict):
            for key in given:
                if key not in allowed:
                    problems.append(f"{name}.{_toml_key(key)}: unknown key")

    top = Reader(data, "", problems)
    municipality = top.text("municipality", required=True) or ""
    if municipality and not MUNICIPALITY_RE.fullmatch(municipality):
        top.bad("municipality", f"must match {MUNICIPALITY_RE.pattern} (got {municipality!r})")

    def section(name: str) -> dict[str, Any] | None:
        t = data.get(name)
        return t if isinstance(t, dict) else None

    # [mqtt]
    r = Reader(section("mqtt") or {}, "mqtt.", problems)
    tls = r.flag("tls", False)
    mqtt = MqttConfig(
        host=r.text("host", "127.0.0.1") or "127.0.0.1",
        port=int(r.number("port", 8883 if tls else 1883, 1, 65535, integer=True)),
        client_id=r.text("client_id", f"gateway-{municipality}") or f"gateway-{municipality}",
        username=r.text("username"),
        password=r.secret("password", "KLUPA_MQTT_PASSWORD", base),
        tls=tls,
        ca_file=r.file("ca_file", base),
        certfile=r.file("certfile", base),
        keyfile=r.file("keyfile", base),
    )
    if not tls:
        for key in ("ca_file", "certfile", "keyfile"):
            if key in r.table:
                r.bad(key, "only with tls = true")
    if ("certfile" in r.table) != ("keyfile" in r.table):
        r.bad(
            "keyfile" if "certfile" in r.table else "certfile", "certfile and keyfile go together"
        )

    # [spool]
    spool_t = section("spool")
    if spool_t is None and "spool" not in data:
        problems.append("spool: required section [spool] with path")
    r = Reader(spool_t or {}, "spool.", problems)
    spool_path = r.text("path", required=spool_t is not None) or ""
    if spool_path:
        p = Path(spool_path) if os.path.isabs(spool_path) else base / spool_path
        spool_path = str(p)
        parent = p.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            r.bad("path", f"directory {printable(str(parent), 4096)} is not writable")
    spool = SpoolConfig(
        path=spool_path,
        retention_days=r.number("retention_days", 35, 1, 36500),
        max_mb=r.number("max_mb", 2048, 1, 10_000_000),
    )

    # [influxdb]
    influx: InfluxConfig | None = None
    t = section("influxdb")
    if t is not None:
        r = Reader(t, "influxdb.", problems)
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
            password=(
                r.secret("password", "KLUPA_INFLUXDB_PASSWORD", base) if version == 1 else None
            ),
            batch_size=int(r.number("batch_size", 5000, 1, 1_000_000, integer=True)),
            flush_interval_s=r.number("flush_interval_s", 5, 0.01, 3600),
        )
        plain_http(r, influx.url, bool(influx.token or influx.password))
        if version == 2:
            if "org" not in t:
                r.bad("org", "required with api_version = 2")
            if "bucket" not in t:
                r.bad("bucket", "required with api_version = 2")

    # [portal]
    portal: PortalConfig | None = None
    t = section("portal")
    if t is not None:
        r = Reader(t, "portal.", problems)
        portal = PortalConfig(
            url=r.url("url") or "",
            token=r.secret("token", "KLUPA_PORTAL_TOKEN", base, required=True),
            poll_sync_s=r.number("poll_sync_s", 60, 1, 86400),
        )
        plain_http(r, portal.url, bool(portal.token))

    # [health]
    r = Reader(section("health") or {}, "health.", problems)
    expected: list[str] = []
    raw = r.table.get("expected", [])
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        r.bad("expected", "must be a list of bench ids")
    else:
        for b in raw:
            if not BENCH_RE.fullmatch(b):
                r.bad("expected", f"{b!r} is not a bench id ({BENCH_RE.pattern})")
        expected = list(raw)
    health = HealthConfig(
        offline_after_s=r.number("offline_after_s", 300, 1, 30 * 86400), expected=expected
    )

    # [ota]
    ota: OtaConfig | None = None
    t = section("ota")
    if t is not None:
        r = Reader(t, "ota.", problems)
        d = r.text("dir", required=True)
        if d is not None:
            dp = Path(d) if os.path.isabs(d) else base / d
            if not dp.is_dir():
                r.bad("dir", f"directory {printable(d, 4096)} does not exist")
            d = str(dp)
        ota = OtaConfig(dir=d or "", port=int(r.number("port", 8070, 1, 65535, integer=True)))

    # [metrics]
    metrics: MetricsConfig | None = None
    t = section("metrics")
    if t is not None:
        r = Reader(t, "metrics.", problems)
        metrics = MetricsConfig(port=int(r.number("port", 9108, 1, 65535, integer=True)))

    # [alerts]
    alerts: AlertsConfig | None = None
    t = section("alerts")
    if t is not None:
        alerts = _alerts(Reader(t, "alerts.", problems), base)

    # [clock]
    r = Reader(section("clock") or {}, "clock.", problems)
    clock = ClockConfig(require_sync=r.flag("require_sync", True))

    if problems:
        raise ConfigError(problems)
    return Config(
        municipality=municipality,
        mqtt=mqtt,
        spool=spool,
        influxdb=influx,
        portal=portal,
        health=health,
        ota=ota,
        metrics=metrics,
        clock=clock,
        alerts=alerts,
        path=env_path,
    )


def _alerts(r: Reader, base: Path) -> AlertsConfig:
    t = r.table
    quiet: tuple[int, int] | None = None
    if "quiet_hours" in t:
        q = t["quiet_hours"]
        if (
            isinstance(q, list)
            and len(q) == 2
            and all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in q)
            and q[0] != q[1]
        ):
            quiet = (q[0], q[1])
        else:
            r.bad("quiet_hours", "must be [start, end], local hours 0..23, e.g. [22, 7]")
    mail_to: list[str] = []
    raw = t.get("mail_to", [])
    if not isinstance(raw, list) or not all(isinstance(x, str) and "@" in x for x in raw):
        r.bad("mail_to", "must be a list of e-mail addresses")
    else:
        mail_to = list(raw)
    a = AlertsConfig(
        repeat_h=r.number("repeat_h", 6, 0.01, 24 * 365),
        quiet_hours=quiet,
        evaluate_s=r.number("evaluate_s", 30, 0.05, 3600),
        smtp_host=r.text("smtp_host", "") or "",
        smtp_port=int(r.number("smtp_port", 587, 1, 65535, integer=True)),
        smtp_starttls=r.flag("smtp_starttls", True),
        smtp_ca_file=r.file("smtp_ca_file", base),
        smtp_user=r.text("smtp_user", "") or "",
        smtp_password=r.secret("smtp_password", "KLUPA_SMTP_PASSWORD", base),
        mail_from=r.text("mail_from", "") or "",
        mail_to=mail_to,
        webhook_url=r.url("webhook_url") if "webhook_url" in t else None,
        webhook_token=r.secret("webhook_token", "KLUPA_WEBHOOK_TOKEN", base),
        lag_s=r.number("lag_s", 3600, 1, 365 * 86400),
        backlog_rows=int(r.number("backlog_rows", 50_000, 1, 10**9, integer=True)),
        disk_free_mb=r.number("disk_free_mb", 200, 0, 10**7),
        wet_after_s=r.number("wet_after_s", 3600, 1, 30 * 86400),
    )
    if mail_to and not a.smtp_host:
        r.bad("smtp_host", "required with mail_to")
    if mail_to and "@" not in a.mail_from:
        r.bad("mail_from", "required with mail_to: the sender's address")
    if not mail_to and not a.webhook_url:
        r.bad("mail_to", "give mail_to (with smtp_host) or webhook_url: alerts need a channel")
    if a.smtp_user and not a.smtp_password:
        r.bad(
            "smtp_password", "required with smtp_user (or smtp_password_file, KLUPA_SMTP_PASSWORD)"
        )
    plain_http(r, a.webhook_url, bool(a.webhook_token), "webhook_url")
    return a


def load(path: str | os.PathLike[str]) -> Config:
    """Read and check a config file; every problem is one line naming its key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"]) from None
    return parse(data, p.resolve().parent, str(p))


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text
