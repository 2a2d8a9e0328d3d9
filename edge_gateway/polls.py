"""Poll distribution: fetch the municipality's polls from the portal, publish the one in force.

Every ``poll_sync_s`` the open and upcoming polls are fetched; every second the choice is made
again from that list by the gateway's clock (so a poll opens and closes on time between
fetches): of the polls open now, the one that opened last (ties: the smallest id), retained on
``klupa/v1/{m}/poll``; when none is open, ``{"v":1,"id":null}`` — never an empty payload.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from edge_gateway import protocol as P
from edge_gateway.sinks.base import Rejected, Retry, http
from edge_gateway.sinks.portal.config import PortalConfig
from edge_gateway.store import Store, backlog

if TYPE_CHECKING:
    from edge_gateway.view import GatewayView

log = logging.getLogger("edge_gateway.polls")

POLL_FIELDS = ("v", "id", "opens", "closes", "question", "options")
HEARTBEAT_S = 60.0  # docs/interfaces.md: PUT /api/v1/gateways/{m} every 60 s


def choose(polls: list[dict[str, Any]], now: float) -> dict[str, Any] | None:
    """The poll a municipality's benches show at ``now``, or None."""
    open_now = [p for p in polls if p["opens"] <= now < p["closes"]]
    if not open_now:
        return None
    return min(open_now, key=lambda p: (-p["opens"], p["id"]))


def poll_payload(poll: dict[str, Any] | None) -> bytes:
    if poll is None:
        return P.no_poll()
    return P.encode({k: poll[k] for k in POLL_FIELDS if k in poll} | {"v": P.VERSION})


class PollSync(threading.Thread):
    def __init__(self, gateway: GatewayView, cfg: PortalConfig) -> None:
        super().__init__(name="poll-sync", daemon=True)
        self.gateway = gateway
        self.cfg = cfg
        self.polls: list[dict[str, Any]] | None = None
        self.published: bytes | None = None
        self.generation = -1  # the gateway's connection the poll was last published on
        self.stopping = threading.Event()
        self.heartbeat_s = HEARTBEAT_S
        self.hidden: dict[str, int] = {}
        self.heartbeats = 0  # answered 200
        self.beat_ok_at = time.time()  # the last heartbeat the portal took (start: now)
        self.heartbeat_logged = 0.0

    def seen(self, payload: bytes) -> None:
        """A message on the poll topic (the gateway watches it): when it is not what this
        gateway published (deleted with an empty payload, or replaced by another client),
        the poll in force is published again on the next pass."""
        if self.published is not None and payload != self.published:
            log.warning("the retained poll was changed by someone else; publishing it again")
            self.published = None

    def fetch(self) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"municipality": self.gateway.m})
        headers = {"Authorization": f"Bearer {self.cfg.token or ''}", "Accept": "application/json"}
        _, body = http("GET", f"{self.cfg.url}/api/v1/polls?{q}", None, headers, timeout=15)
        data = json.loads(body)
        polls = data.get("polls") if isinstance(data, dict) else None
        if not isinstance(polls, list) or not all(isinstance(p, dict) for p in polls):
            raise ValueError(f"the answer is not a list of polls: {body[:80]!r}")
        out = []
        for p in polls:
            payload = P.encode({k: p[k] for k in POLL_FIELDS if k in p} | {"v": P.VERSION})
            try:
                P.validate_poll(payload)
            except P.ProtocolError as exc:
                log.warning("portal poll %s is not a valid Poll (%s); skipped", p.get("id"), exc)
                continue
            out.append(p)
        return out

    def note_hidden(self, polls: list[dict[str, Any]]) -> None:
        """Polls whose results stay hidden until they close (the portal says `results:
        "after_close"`): kept in the store, where the InfluxDB sink reads them."""
        hidden = {
            str(p["id"]): int(p["closes"])
            for p in polls
            if p.get("results") == "after_close" or p.get("hidden") is True
        }
        if hidden and hidden != self.hidden:
            st = Store(self.gateway.cfg.spool.path)
            try:
                st.set_hidden_polls(hidden)
            finally:
                st.close()
            self.hidden = hidden

    def heartbeat(self, now: float) -> None:
        """Tell the portal this gateway is alive, with its version and forwarding lag, so a
        dead Pi shows its benches as *unknown* centrally, not as online for ever."""
        from edge_gateway import __version__

        try:
            _, lag = backlog(self.gateway.cfg.spool.path, [s.name for s in self.gateway.sinks], now)
        except Exception:  # noqa: BLE001 - a store in trouble still sends its heartbeat
            lag = 0.0
        body = json.dumps({"version": __version__, "ts": int(now), "lag_s": round(lag, 1)})
        headers = {
            "Authorization": f"Bearer {self.cfg.token or ''}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        m = urllib.parse.quote(self.gateway.m)
        http("PUT", f"{self.cfg.url}/api/v1/gateways/{m}", body.encode(), headers, timeout=15)
        self.heartbeats += 1
        self.beat_ok_at = time.time()

    def run(self) -> None:
        last_fetch = 0.0
        last_beat = 0.0
        while not self.stopping.is_set():
            now = time.time()
            if now - last_beat >= self.heartbeat_s:
                last_beat = now
                try:
                    self.heartbeat(now)
                except Exception as exc:  # noqa: BLE001 - the next beat tries again
                    if now - self.heartbeat_logged >= 600:
                        self.heartbeat_logged = now
                        log.warning("could not send the heartbeat to the portal: %s", exc)
            if now - last_fetch >= self.cfg.poll_sync_s:
                last_fetch = now
                try:
                    self.polls = self.fetch()
                    self.note_hidden(self.polls)
                except (Retry, Rejected, ValueError) as exc:
                    log.warning("could not fetch polls from the portal: %s", exc)
                except Exception:  # a bug must not end poll distribution; the last list stays
                    log.exception("fetching polls failed")
            if self.polls is not None and self.gateway.connected.is_set():
                # Again after every (re)connect too: a broker restarted without its
                # persistence has lost the retained poll.
                payload = poll_payload(choose(self.polls, now))
                generation = self.gateway.generation
                if payload != self.published or generation != self.generation:
                    self.published = payload
                    self.generation = generation
                    self.gateway.publish(self.gateway.poll_topic, payload)
                    log.info("published poll: %s", json.loads(payload).get("id"))
            self.stopping.wait(1.0)

    def stop(self) -> None:
        self.stopping.set()
