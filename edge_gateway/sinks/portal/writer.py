"""Portal sink: votes, bench-days and bench state per docs/interfaces.md's portal API.

A vote's ``id`` is ``bench/boot/seq``, so a replay is a duplicate at the portal, never a
second vote. Votes the portal lists as rejected (unknown poll, outside its window) are
quarantined with the portal's reason.

An answer must be the portal API's: a votes answer accounts for every vote sent. Anything
else (a proxy's page, a wrong URL answering 200) is retried, never taken as delivered.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from typing import Any

from edge_gateway.loglimit import BurstLog
from edge_gateway.payloads import Event, Telemetry, Vote
from edge_gateway.sinks.base import Rejected, Retry, Sink, decode_row, http
from edge_gateway.sinks.portal.config import PortalConfig
from edge_gateway.store import Row, local_day

log = logging.getLogger("edge_gateway.sink.portal")

VOTES_PER_REQUEST = 500
FW_MAX = 40  # characters of `fw` the portal keeps
DAYS_PER_REQUEST = 200
REFUSED_LOG_S = 3600.0  # a bench whose state the portal refuses: logged this often


class PortalSink(Sink):
    name = "portal"

    def __init__(self, store_path: str, municipality: str, cfg: PortalConfig) -> None:
        super().__init__(store_path, 2000, 1.0)
        self.municipality = municipality
        self.cfg = cfg
        self.timeout_s = 15.0
        self.refused_logged: dict[str, float] = {}  # bench -> when its refusal was logged
        self.row_log = BurstLog(log)  # set_aside's lines, under this writer's logger

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.cfg.token or ''}",
        }

    def request(self, method: str, path: str, body: dict[str, Any], expect: str) -> dict[str, Any]:
        """The portal's JSON answer, which must hold `expect`; Retry if it is something else."""
        _, data = http(
            method, self.cfg.url + path, json.dumps(body).encode(), self.headers(), self.timeout_s
        )
        try:
            out = json.loads(data)
        except ValueError:
            out = None
        if not isinstance(out, dict) or expect not in out:
            raise Retry(
                f"{method} {path}: the answer is not the portal API's ({data[:60]!r}); "
                "is [portal] url the portal?"
            )
        return out

    def send(self, rows: list[Row]) -> None:
        votes: list[tuple[Row, dict[str, Any]]] = []
        days: set[tuple[str, str]] = set()
        benches: dict[str, dict[str, Any]] = {}
        for row in rows:
            msg = decode_row(row)
            if msg is None:
                continue
            if isinstance(msg, Vote):
                votes.append(
                    (
                        row,
                        {
                            "id": f"{row.bench}/{row.boot}/{row.seq}",
                            "municipality": self.municipality,
                            "bench": row.bench,
                            "poll": msg.poll,
                            "choice": msg.choice,
                            "ts": int(msg.ts),
                        },
                    )
                )
                days.add((row.bench, local_day(row.ts)))
            elif isinstance(msg, Telemetry):
                days.add((row.bench, local_day(row.ts)))
                benches.setdefault(row.bench, {}).update(
                    soc=float(msg.batt.soc), power=msg.power, last_seen=int(row.received)
                )
            elif isinstance(msg, Event) and msg.type == "session":
                days.add((row.bench, local_day(row.ts)))
            elif isinstance(msg, dict):
                b = benches.setdefault(row.bench, {})
                b.update(online=bool(msg["online"]), last_seen=int(row.received))
                if msg.get("fw") is not None:
                    b["fw"] = msg["fw"]
                # uptime is counted on the gateway's clock; `ts` may be the bench's own
                days.add((row.bench, local_day(int(row.received))))
        for i in range(0, len(votes), VOTES_PER_REQUEST):
            self._send_votes(votes[i : i + VOTES_PER_REQUEST])
        self._send_days(sorted(days))
        for bench in sorted(benches):
            self._send_bench(bench, benches[bench])

    def probe(self) -> bool:
        q = urllib.parse.urlencode({"municipality": self.municipality})
        headers = {**self.headers(), "Accept": "application/json"}
        try:
            http("GET", f"{self.cfg.url}/api/v1/polls?{q}", None, headers, self.timeout_s)
        except (Retry, Rejected):
            return False
        return True

    def _send_votes(self, chunk: list[tuple[Row, dict[str, Any]]]) -> None:
        try:
            answer = self.request(
                "POST", "/api/v1/votes", {"votes": [v for _, v in chunk]}, "accepted"
            )
        except Retry as exc:
            if not self.poisoned(exc):
                raise
            if len(chunk) > 1:  # find the vote the portal cannot take; the rest go on
                for one in chunk:
                    self._send_votes([one])
                return
            if not self.strike(("vote", chunk[0][0].id)):
                raise
            why = f"{str(exc)[:120]}, while it answers otherwise"
            row, vote = chunk[0]
            self._set_aside(
                row, vote["id"], "failed on", why, f"portal_{exc.status}: {str(exc)[:100]}"
            )
            return
        except Rejected as exc:
            if len(chunk) == 1:
                row, vote = chunk[0]
                self._set_aside(
                    row, vote["id"], "refused", exc.reason[:120], f"portal_{exc.status}"
                )
                return
            for one in chunk:
                self._send_votes([one])
            return
        by_id = {v["id"]: r for r, v in chunk}
        acc, dup, rejected = (answer.get(k) for k in ("accepted", "duplicates", "rejected"))
        if not (
            isinstance(acc, int)
            and isinstance(dup, int)
            and isinstance(rejected, list)
            and all(isinstance(item, dict) for item in rejected)
            and acc + dup + len(rejected) == len(chunk)
        ):
            raise Retry(f"POST /api/v1/votes: the answer does not account for {len(chunk)} votes")
        for item in rejected:
            refused = by_id.get(str(item.get("id")))
            if refused is not None:
                reason = str(item.get("reason", ""))[:80]
                self._set_aside(
                    refused, item.get("id"), "rejected", reason, f"portal_rejected: {reason}"
                )

    def _set_aside(self, row: Row, vote_id: Any, how: str, why: str, reason: str) -> None:
        """A vote the portal will not take: ``portal {how} vote {id}: {why}``, see set_aside."""
        level = logging.INFO if how == "rejected" else logging.WARNING
        self.set_aside(
            row, reason, f"vote {how}", "portal %s vote %s: %s", how, vote_id, why, level=level
        )

    def _send_days(self, days: list[tuple[str, str]]) -> None:
        now = time.time()
        items = []
        for bench, day in days:
            d = self.store.daily(bench, day, now)
            items.append({"municipality": self.municipality, "bench": bench, "date": day, **d})
        for i in range(0, len(items), DAYS_PER_REQUEST):
            self._put_days(items[i : i + DAYS_PER_REQUEST])

    def _put_days(self, chunk: list[dict[str, Any]]) -> None:
        try:
            self.request("PUT", "/api/v1/bench-days", {"days": chunk}, "upserted")
        except Retry as exc:
            if not self.poisoned(exc):
                raise
            if len(chunk) > 1:
                for day in chunk:
                    self._put_days([day])
                return
            if not self.strike(("day", chunk[0]["bench"], chunk[0]["date"])):
                raise
            log.warning(
                "portal failed on the day %s of %s (%s) while it answers otherwise; skipped",
                chunk[0]["date"],
                chunk[0]["bench"],
                str(exc)[:120],
            )
        except Rejected as exc:
            if len(chunk) > 1:  # one bad day must not keep the others from the portal
                for day in chunk:
                    self._put_days([day])
                return
            log.warning(
                "portal refused the day %s of %s: %s", chunk[0]["date"], chunk[0]["bench"], exc
            )

    def _send_bench(self, bench: str, latest: dict[str, Any]) -> None:
        """The bench's state: what this batch's rows say, the rest from the store."""
        info = next((b for b in self.store.benches() if b["bench"] == bench), None) or {}
        body = {
            "municipality": self.municipality,
            "online": bool(latest.get("online", info.get("online", True))),
            "last_seen": int(latest.get("last_seen") or info.get("last_seen") or 0),
            "soc": latest.get("soc", info.get("soc")),
            "power": latest.get("power", info.get("power")),
            "fw": latest.get("fw", info.get("fw")),
        }
        if isinstance(body["fw"], str) and len(body["fw"]) > FW_MAX:
            # The protocol does not bound a version string; the reference portal keeps 40
            # characters and refuses more, which would lose the rest of the bench's state.
            body["fw"] = body["fw"][:FW_MAX]
        try:
            self.request("PUT", f"/api/v1/benches/{bench}", body, "ok")
        except Retry as exc:
            if exc.status == 403:
                # This bench is not registered to the municipality (not yet, or moved): the
                # broker lets it in, the portal does not take its state. A wrong token would
                # have failed on the bench-days sent before this; retried, this 403 would
                # hold every later row of every bench back for ever.
                self._refused(bench, str(exc))
                return
            if not self.poisoned(exc) or not self.strike(("bench", bench)):
                raise
            log.warning("portal failed on the state of %s (%s); skipped", bench, str(exc)[:120])
        except Rejected as exc:
            self._refused(bench, str(exc))

    def _refused(self, bench: str, why: str) -> None:
        """The portal refused a bench's state: skipped (the next of its rows sends it again),
        logged at most once an hour per bench."""
        now = time.monotonic()
        if now - self.refused_logged.get(bench, -REFUSED_LOG_S) < REFUSED_LOG_S:
            return
        if len(self.refused_logged) > 10_000:
            self.refused_logged.clear()
        self.refused_logged[bench] = now
        log.warning("portal refused the state of %s (skipped): %s", bench, why[:160])
