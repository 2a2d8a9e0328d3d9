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
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_gateway.config_reader import Reader, plain_http
from edge_gateway.sinks.influxdb.config import InfluxConfig
from edge_gateway.sinks.portal.config import PortalConfig
from edge_gateway.sinks.registry import SINKS
from edge_gateway.text import printable
from klupa.contract import BENCH_RE, MUNICIPALITY_RE, gateway_user
from klupa.notify import NotifyConfig, quiet_hours

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
    batch_s: float = 0  # > 0: small groups go to the ingest log, the store every batch_s


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
    # Each configured sink's config by its name, in the registry's order (sinks.registry).
    sinks: dict[str, Any] = field(default_factory=dict)
    health: HealthConfig = field(default_factory=HealthConfig)
    ota: OtaConfig | None = None
    metrics: MetricsConfig | None = None
    clock: ClockConfig = field(default_factory=ClockConfig)
    alerts: AlertsConfig | None = None
    path: str = ""

    def secrets(self) -> list[str]:
        """Every secret value in force, so a log filter can blank them."""
        out = [self.mqtt.password]
        for kind in SINKS:
            if kind.name in self.sinks:
                out += kind.secrets(self.sinks[kind.name])
        if self.alerts:
            out += [self.alerts.smtp_password, self.alerts.webhook_token]
        return [s for s in out if s]

    @property
    def influxdb(self) -> InfluxConfig | None:
        return self.sinks.get("influxdb")

    @property
    def portal(self) -> PortalConfig | None:
        """The portal, which the gateway also asks for polls and tells it is alive."""
        return self.sinks.get("portal")


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
    "spool": {"path", "retention_days", "max_mb", "batch_s"},
    **{kind.name: set(kind.keys) for kind in SINKS},
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


def _toml_key(key: str) -> str:
    """A key as TOML writes it: bare, or quoted with escapes (so a problem stays one line)."""
    if BARE_KEY_RE.fullmatch(key):
        return key
    return json.dumps(key)


def _unknown(data: Mapping[str, Any], problems: list[str]) -> None:
    """Unknown tables and keys: a typo must not silently switch something off."""
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


def _mqtt(r: Reader, base: Path, municipality: str) -> MqttConfig:
    tls = r.flag("tls", False)
    mqtt = MqttConfig(
        host=r.text("host", "127.0.0.1") or "127.0.0.1",
        port=int(r.number("port", 8883 if tls else 1883, 1, 65535, integer=True)),
        client_id=r.text("client_id", gateway_user(municipality)) or gateway_user(municipality),
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
    return mqtt


def _spool(r: Reader, base: Path, given: bool) -> SpoolConfig:
    spool_path = r.text("path", required=given) or ""
    if spool_path:
        p = Path(spool_path) if os.path.isabs(spool_path) else base / spool_path
        spool_path = str(p)
        parent = p.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            r.bad("path", f"directory {printable(str(parent), 4096)} is not writable")
    return SpoolConfig(
        path=spool_path,
        retention_days=r.number("retention_days", 35, 1, 36500),
        max_mb=r.number("max_mb", 2048, 1, 10_000_000),
        batch_s=r.number("batch_s", 0, 0, 300),
    )


def _health(r: Reader) -> HealthConfig:
    expected: list[str] = []
    raw = r.table.get("expected", [])
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        r.bad("expected", "must be a list of bench ids")
    else:
        for b in raw:
            if not BENCH_RE.fullmatch(b):
                r.bad("expected", f"{b!r} is not a bench id ({BENCH_RE.pattern})")
        expected = list(raw)
    return HealthConfig(
        offline_after_s=r.number("offline_after_s", 300, 1, 30 * 86400), expected=expected
    )


def _ota(r: Reader, base: Path) -> OtaConfig:
    d = r.text("dir", required=True)
    if d is not None:
        dp = Path(d) if os.path.isabs(d) else base / d
        if not dp.is_dir():
            r.bad("dir", f"directory {printable(d, 4096)} does not exist")
        d = str(dp)
    return OtaConfig(dir=d or "", port=int(r.number("port", 8070, 1, 65535, integer=True)))


def parse(data: Mapping[str, Any], base: Path, env_path: str = "") -> Config:
    """Build a Config from parsed TOML; relative file paths are relative to ``base``."""
    problems: list[str] = []
    _unknown(data, problems)

    def section(name: str) -> dict[str, Any] | None:
        t = data.get(name)
        return t if isinstance(t, dict) else None

    def reader(name: str) -> Reader:
        return Reader(section(name) or {}, f"{name}.", problems)

    top = Reader(data, "", problems)
    municipality = top.text("municipality", required=True) or ""
    if municipality and not MUNICIPALITY_RE.fullmatch(municipality):
        top.bad("municipality", f"must match {MUNICIPALITY_RE.pattern} (got {municipality!r})")
    mqtt = _mqtt(reader("mqtt"), base, municipality)
    spool_given = section("spool") is not None
    if not spool_given and "spool" not in data:
        problems.append("spool: required section [spool] with path")
    spool = _spool(reader("spool"), base, spool_given)
    sinks = {
        kind.name: kind.parse(reader(kind.name), base)
        for kind in SINKS
        if section(kind.name) is not None
    }
    health = _health(reader("health"))
    ota = _ota(reader("ota"), base) if section("ota") is not None else None
    metrics = None
    if section("metrics") is not None:
        r = reader("metrics")
        metrics = MetricsConfig(port=int(r.number("port", 9108, 1, 65535, integer=True)))
    alerts = _alerts(reader("alerts"), base) if section("alerts") is not None else None
    clock = ClockConfig(require_sync=reader("clock").flag("require_sync", True))
    if problems:
        raise ConfigError(problems)
    return Config(
        municipality=municipality,
        mqtt=mqtt,
        spool=spool,
        sinks=sinks,
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
        quiet = quiet_hours(t["quiet_hours"])
        if quiet is None:
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


def load_for_command(path: str, prog: str) -> Config | None:
    """For a command line: the config, or None with each problem printed as ``prog: path: …``."""
    try:
        return load(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"{prog}: {path}: {line}", file=sys.stderr)
        return None


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text
