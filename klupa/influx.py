"""`klupa influx setup`: retention and hourly downsampling for the benches' InfluxDB.

On InfluxDB 1.x it makes the database hold:

- ``raw``, the default retention policy, 90 days: every point the gateways write (they write
  to the default policy), and what the dashboards read;
- ``forever``, kept for ever: the same measurements downsampled to one point per hour per
  series by continuous queries (means of levels, sums of energies and counts, the last
  ``daily`` row), so a year's trend survives the raw data.

Idempotent: what exists as wanted is left alone, a policy whose duration differs is altered,
a continuous query whose text differs is dropped and created again; a second run changes
nothing and says so. InfluxDB 2.x and 3.x have no retention policies or continuous queries:
there the command changes nothing and prints what to set instead (bucket or database
retention, a second store and a downsampling job).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from klupa.console import OneCommand, option

RAW = "raw"
RAW_DURATION = "90d"
RAW_DURATION_SHOWN = "2160h0m0s"  # how SHOW RETENTION POLICIES writes 90d
FOREVER = "forever"
RESAMPLE_FOR = "2d"

# The command line main() parses: its help texts and options.
SETUP = OneCommand(
    "klupa influx setup",
    "InfluxDB set-up for the benches' data",
    "retention policies and hourly continuous queries (1.x); advice for 2.x/3.x",
    "On InfluxDB 1.x: retention policy raw (90 days, default) and forever, "
    "and hourly continuous queries from raw into forever. Safe to run again. On 2.x and "
    "3.x: prints what to set there.",
    (
        option("--url", required=True, help="InfluxDB URL, e.g. http://127.0.0.1:8086"),
        option("--database", default="benches", help="database (default: benches)"),
        option("--username", default="", help="an admin user, where auth is enabled"),
        option(
            "--password-file",
            default="",
            help="file holding the password (or set KLUPA_INFLUXDB_PASSWORD)",
        ),
        option(
            "--backfill",
            type=int,
            metavar="DAYS",
            default=0,
            help="1.x: also downsample the last DAYS days into forever now (after an import, or "
            "records that arrived more than two days late)",
        ),
        option(
            "--print",
            action="store_true",
            dest="print_only",
            help="print the statements, connect nowhere",
        ),
    ),
)

# measurement -> its hourly aggregates, named as the raw fields where the meaning holds
DOWNSAMPLED: dict[str, str] = {
    "power": 'mean("solar_v") AS "solar_v", mean("solar_a") AS "solar_a", '
    'sum("solar_wh") AS "solar_wh", mean("batt_v") AS "batt_v", mean("batt_a") AS "batt_a", '
    'mean("batt_soc") AS "batt_soc", min("batt_soc") AS "batt_soc_min"',
    "port": 'mean("a") AS "a", sum("wh") AS "wh"',
    "link": 'mean("rssi") AS "rssi", max("clients") AS "clients", min("heap") AS "heap"',
    "usage": 'sum("seat_occ_s") AS "seat_occ_s", sum("touches") AS "touches"',
    "env": 'mean("temp_c") AS "temp_c", mean("rh") AS "rh"',
    "session": 'count("duration_s") AS "sessions", sum("duration_s") AS "duration_s", '
    'sum("wh") AS "wh"',
    "votes": 'sum("count") AS "count"',
    "daily": 'last("solar_wh") AS "solar_wh", last("charge_wh") AS "charge_wh", '
    'last("sessions") AS "sessions", last("seat_occ_s") AS "seat_occ_s", '
    'last("touches") AS "touches", last("votes") AS "votes", last("uptime_pct") AS "uptime_pct"',
    "gateway": 'last("received") AS "received", last("accepted") AS "accepted", '
    'last("rejected") AS "rejected", last("duplicates") AS "duplicates", '
    'max("spool_depth") AS "spool_depth", max("forward_lag_s") AS "forward_lag_s"',
}


class InfluxSetupError(Exception):
    """The server could not be reached or refused a statement."""


def cq_name(measurement: str) -> str:
    return f"klupa_{measurement}_1h"


def downsample_select(database: str, measurement: str) -> str:
    """The SELECT … INTO of a measurement's hourly continuous query (also usable to backfill
    a time range: add a WHERE on time)."""
    return (
        f'SELECT {DOWNSAMPLED[measurement]} INTO "{database}"."{FOREVER}"."{measurement}" '
        f'FROM "{database}"."{RAW}"."{measurement}" GROUP BY time(1h), *'
    )


def cq_statement(database: str, measurement: str) -> str:
    # Every hour, recompute the last two days' hours: records arrive late (a bench's flash
    # spool after an outage, a gateway's backlog), `votes` rows are rewritten by late votes and
    # a `daily` row, stamped at local midnight, is rewritten all day long. Older late data
    # reaches `forever` through `--backfill`.
    return (
        f'CREATE CONTINUOUS QUERY "{cq_name(measurement)}" ON "{database}" '
        f"RESAMPLE EVERY 1h FOR {RESAMPLE_FOR} BEGIN {downsample_select(database, measurement)} END"
    )


def backfill(server: Server, database: str, days: int) -> int:
    """Run every continuous query's SELECT … INTO over the last ``days`` days, now; returns
    the number of hourly points written into ``forever``."""
    written = 0
    for measurement in DOWNSAMPLED:
        select = downsample_select(database, measurement).replace(
            " GROUP BY ", f" WHERE time > now() - {int(days)}d GROUP BY "
        )
        for row in _rows(server.query(select, database)):
            written += int(row.get("written", 0))
    return written


def _same_query(a: str, b: str) -> bool:
    # SHOW CONTINUOUS QUERIES writes the statement back without the quotes it can do without.
    def norm(s: str) -> str:
        return " ".join(s.replace('"', "").split()).lower()

    return norm(a) == norm(b)


@dataclass
class Server:
    url: str
    username: str = ""
    password: str = ""
    timeout: float = 15.0

    def _request(self, path: str, data: dict[str, str] | None = None) -> tuple[Any, Any]:
        url = self.url.rstrip("/") + path
        body = None
        if data is not None:
            params = dict(data)
            if self.username or self.password:
                params.update(u=self.username, p=self.password)
            body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(url, data=body)
        if self.password and data is None:
            req.add_header("Authorization", f"Token {self.password}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return resp.headers, json.loads(raw) if raw.strip() else None
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")[:200]
            if data is not None and exc.code in (400, 401, 403):
                try:
                    return exc.headers, json.loads(text)
                except ValueError:
                    pass
            raise InfluxSetupError(f"{url}: HTTP {exc.code}: {text.strip()}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InfluxSetupError(f"cannot reach {self.url}: {reason}") from None
        except ValueError:
            raise InfluxSetupError(f"{url} did not answer JSON: is it InfluxDB?") from None

    def version(self) -> str:
        """The server's version from /ping (``1.8.10``, ``2.7.4``, ``3.0.1``), or ``""``."""
        headers, body = self._request("/ping")
        version = headers.get("X-Influxdb-Version", "") if headers else ""
        if not version and isinstance(body, dict):
            version = str(body.get("version", ""))
        return version.lstrip("v")

    def query(self, q: str, database: str = "") -> list[dict[str, Any]]:
        """The series of one statement's result; raises with the server's error."""
        data = {"q": q}
        if database:
            data["db"] = database
        _, body = self._request("/query", data)
        if not isinstance(body, dict):
            raise InfluxSetupError(f"{self.url}/query: unexpected answer to {q!r}")
        if "error" in body:
            raise InfluxSetupError(f"{q}: {body['error']}")
        result = (body.get("results") or [{}])[0]
        if "error" in result:
            raise InfluxSetupError(f"{q}: {result['error']}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series


def _rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        dict(zip(s["columns"], values, strict=True)) | {"_series": s.get("name", "")}
        for s in series
        for values in s.get("values", [])
    ]


@dataclass
class Report:
    version: str
    changes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _holds_points(server: Server, database: str, policy: str) -> bool:
    return bool(server.query(f'SELECT * FROM "{database}"."{policy}"./.*/ LIMIT 1', database))


def setup_v1(server: Server, database: str, report: Report) -> None:
    def run(statement: str, change: str) -> None:
        server.query(statement, database)
        report.changes.append(change)

    dbs = {r["name"] for r in _rows(server.query("SHOW DATABASES"))}
    if database not in dbs:
        run(f'CREATE DATABASE "{database}"', f"created database {database}")
    policies = {
        r["name"]: r for r in _rows(server.query(f'SHOW RETENTION POLICIES ON "{database}"'))
    }
    raw = policies.get(RAW)
    if raw is None:
        run(
            f'CREATE RETENTION POLICY "{RAW}" ON "{database}" DURATION {RAW_DURATION} '
            "REPLICATION 1 DEFAULT",
            f"created retention policy {RAW} ({RAW_DURATION}, default)",
        )
    elif raw["duration"] != RAW_DURATION_SHOWN or not raw["default"]:
        run(
            f'ALTER RETENTION POLICY "{RAW}" ON "{database}" DURATION {RAW_DURATION} DEFAULT',
            f"set retention policy {RAW} to {RAW_DURATION}, default (was {raw['duration']}"
            f"{', default' if raw['default'] else ''})",
        )
    else:
        report.kept.append(f"retention policy {RAW} ({RAW_DURATION}, default)")
    forever = policies.get(FOREVER)
    if forever is None:
        run(
            f'CREATE RETENTION POLICY "{FOREVER}" ON "{database}" DURATION INF REPLICATION 1',
            f"created retention policy {FOREVER} (kept for ever)",
        )
    elif forever["duration"] != "0s":
        run(
            f'ALTER RETENTION POLICY "{FOREVER}" ON "{database}" DURATION INF',
            f"set retention policy {FOREVER} to keep for ever (was {forever['duration']})",
        )
    else:
        report.kept.append(f"retention policy {FOREVER} (kept for ever)")
    if raw is None and "autogen" in policies and _holds_points(server, database, "autogen"):
        report.notes.append(
            "points written before now are in retention policy autogen, which the dashboards "
            "no longer read; to keep them, run once:\n"
            f'  SELECT * INTO "{database}"."{RAW}".:MEASUREMENT FROM "{database}"."autogen"./.*/ '
            "GROUP BY *"
        )
    existing = {
        r["name"]: r["query"]
        for r in _rows(server.query("SHOW CONTINUOUS QUERIES"))
        if r["_series"] == database
    }
    for measurement in DOWNSAMPLED:
        name, statement = cq_name(measurement), cq_statement(database, measurement)
        if name not in existing:
            run(statement, f"created continuous query {name}")
        elif not _same_query(existing[name], statement):
            server.query(f'DROP CONTINUOUS QUERY "{name}" ON "{database}"', database)
            run(statement, f"replaced continuous query {name}")
        else:
            report.kept.append(f"continuous query {name}")


def advice_v2(database: str) -> list[str]:
    return [
        "InfluxDB 2.x has no retention policies or continuous queries; set instead:",
        f"  influx bucket update --id <id of bucket {database}> --retention 90d",
        f"  influx bucket create --name {database}_hourly --retention 0",
        "  the v1 mappings the dashboards' InfluxQL needs (raw is the default):",
        f"  influx v1 dbrp create --db {database} --rp {RAW} --default --bucket-id <id of {database}>",
        f"  influx v1 dbrp create --db {database} --rp {FOREVER} --bucket-id <id of {database}_hourly>",
        f"  a task every 1h that writes the hourly aggregates of {database} into "
        f"{database}_hourly: means of levels (power, link, env), sums of energies and counts "
        "(solar_wh, port wh, usage, sessions, votes), last of daily; the aggregates per "
        "measurement are those of the 1.x continuous queries (`klupa influx setup --print`).",
    ]


def advice_v3(database: str) -> list[str]:
    return [
        "InfluxDB 3 has no retention policies or continuous queries; set instead:",
        f"  Enterprise: influxdb3 update database --database {database} --retention-period 90d",
        "  Core sets a retention period only when a database is created (before the gateways",
        f"  first write): influxdb3 create database --retention-period 90d {database}",
        f"  influxdb3 create database {database}_hourly   (no retention period: kept for ever)",
        f"  a scheduled downsampling plugin (processing engine, every 1h) writing the hourly "
        f"aggregates of {database} into {database}_hourly, with the aggregates of the 1.x "
        "continuous queries (`klupa influx setup --print`).",
    ]


def setup(server: Server, database: str = "benches") -> Report:
    """Bring a server's retention and downsampling to what the dashboards expect."""
    version = server.version()
    report = Report(version)
    major = version.split(".", 1)[0]
    if major == "1":
        setup_v1(server, database, report)
    elif major == "2":
        report.notes += advice_v2(database)
    elif major == "3":
        report.notes += advice_v3(database)
    else:
        raise InfluxSetupError(
            f"{server.url} answered /ping without an InfluxDB version: is it InfluxDB?"
        )
    return report


def main(argv: list[str]) -> int:
    args = SETUP.parse(argv)
    if args.print_only:
        print(
            f'CREATE RETENTION POLICY "{RAW}" ON "{args.database}" DURATION {RAW_DURATION} '
            "REPLICATION 1 DEFAULT"
        )
        print(
            f'CREATE RETENTION POLICY "{FOREVER}" ON "{args.database}" DURATION INF REPLICATION 1'
        )
        for measurement in DOWNSAMPLED:
            print(cq_statement(args.database, measurement))
        return 0
    password = os.environ.get("KLUPA_INFLUXDB_PASSWORD", "")
    try:
        if args.password_file:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.read().strip()
        report = setup(Server(args.url, args.username, password), args.database)
    except (InfluxSetupError, OSError) as exc:
        print(f"klupa influx setup: {exc}", file=sys.stderr)
        return 1
    print(f"InfluxDB {report.version} at {args.url}, database {args.database}")
    for line in report.changes:
        print(f"  {line}")
    for line in report.kept:
        print(f"  unchanged: {line}")
    if report.version.startswith("1."):
        print(
            f"{len(report.changes)} changes"
            if report.changes
            else "nothing to change: already set up"
        )
    for line in report.notes:
        print(line)
    if args.backfill > 0 and report.version.startswith("1."):
        try:
            n = backfill(Server(args.url, args.username, password), args.database, args.backfill)
        except InfluxSetupError as exc:
            print(f"klupa influx setup: backfill: {exc}", file=sys.stderr)
            return 1
        print(f"backfilled {FOREVER} from the last {args.backfill} days: {n} hourly points")
    return 0
