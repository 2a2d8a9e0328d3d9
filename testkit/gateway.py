"""Helpers for the gateway's tests and benchmarks: docs/protocol.md payloads and a QoS 1 publisher.

Kept in the package (not a test module) so tests, benchmarks and the system tests share them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_gateway import protocol as P
from edge_gateway.store import day_bounds, local_day
from klupa.services import free_port


def one_day_now(before: int = 0, after: int = 0) -> int:
    """A time at or just before now whose span `[t - before, t + after]` lies in one local day.

    A test whose records span a local midnight would get two ``daily`` rows; this moves its
    base back before midnight instead (records may be 35 days old, never 300 s ahead).
    """
    t = int(time.time())
    start, end = day_bounds(local_day(t))
    if t - before < start:
        t = int(start) - 1 - after
    elif t + after >= end:
        t = int(end) - 1 - after
    return t


def telemetry(
    bench: str, boot: int, seq: int, ts: int, period: int = 60, env: bool = True, **over: Any
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "v": 1,
        "bench": bench,
        "boot": boot,
        "seq": seq,
        "ts": ts,
        "period": period,
        "solar": {"v": 18.42, "a": 1.105, "wh": 0.339},
        "batt": {"v": 13.21, "a": -0.412, "soc": 78.5},
        "ports": [
            {"n": 1, "on": True, "plug": True, "a": 0.912, "wh": 0.076},
            {"n": 2, "on": True, "plug": False, "a": 0.0, "wh": 0.0},
        ],
        "wifi": {"rssi": -61, "clients": 3},
        "seat": {"occ": 42},
        "touch": {"n": 5},
        "power": "normal",
        "heap": 41230,
    }
    if env:
        msg["env"] = {"t": 18.5, "rh": 55.2}
    msg.update(over)
    return msg


def event(bench: str, boot: int, seq: int, ts: int, type_: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "bench": bench, "boot": boot, "seq": seq, "ts": ts, "type": type_, **fields}


def vote(bench: str, boot: int, seq: int, ts: int, poll: str, choice: str) -> dict[str, Any]:
    return {
        "v": 1,
        "bench": bench,
        "boot": boot,
        "seq": seq,
        "ts": ts,
        "poll": poll,
        "choice": choice,
    }


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def municipality_of(bench: str) -> str:
    return bench.rsplit("-", 1)[0]


def topic_of(bench: str, kind: str, municipality: str | None = None) -> str:
    return P.topic(municipality or municipality_of(bench), bench, kind)


class Publisher:
    """A paho client that publishes QoS 1 and can wait until the broker acknowledged all."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str = "",
        will: tuple[str, bytes] | None = None,
        username: str | None = None,
        password: str | None = None,
        clean_session: bool = True,
        ca_file: str | None = None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        if will:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.received: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, r, p: self.connected.set()
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError(f"could not connect to {host}:{port}")
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, p: done.set()
        self.client.subscribe(topic, qos=1)
        done.wait(5)

    def publish(self, topic: str, payload: bytes | dict[str, Any], retain: bool = False) -> None:
        data = dumps(payload) if isinstance(payload, dict) else payload
        self.infos.append(self.client.publish(topic, data, qos=1, retain=retain))

    def publish_all(self, items: Iterable[tuple[str, bytes | dict[str, Any]]]) -> None:
        for t, p in items:
            self.publish(t, p)

    def wait_published(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for info in self.infos:
            while not info.is_published():
                if time.monotonic() > deadline:
                    raise TimeoutError("broker did not acknowledge every publish")
                time.sleep(0.005)
        self.infos.clear()

    def drop(self) -> None:
        """Close the socket without DISCONNECT, as a power cut does: the will fires."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(pred: Any, timeout: float = 10, step: float = 0.05, what: str = "") -> Any:
    """Poll ``pred`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what or pred}")
        time.sleep(step)


def write_config(
    path: Any, municipality: str, broker_port: int, spool: Any, extra: str = ""
) -> Any:
    """A minimal gateway config for tests; ``extra`` is appended TOML."""
    text = (
        f'municipality = "{municipality}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n'
        f'[spool]\npath = "{spool}"\n'
        # This machine's kernel may call its clock unsynchronised (a container): the tests
        # that are about the clock set it themselves.
        + ("" if "[clock]" in extra else "[clock]\nrequire_sync = false\n")
        + extra
    )
    path.write_text(text)
    return path


class RecordingPortal:
    """A loopback HTTP server in the portal API's shape that records every request.

    Votes are kept by ``id`` (a known id is a duplicate, as the real portal does); a vote for
    ``unknown-poll`` is rejected; ``fail_next`` answers 500 that many times; ``slow_next``
    stores a vote batch but answers only after ``slow_s`` (a client timeout); ``wrong_next``
    answers that many writes 200 with ``wrong_body`` and records nothing (a wrong URL's page);
    a bench-days request naming a bench in ``refuse_days_of`` is a 400, as a bad day is.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any, str]] = []
        self.polls: list[dict[str, Any]] = []
        self.token = "portal-token"
        self.fail_next = 0
        self.slow_next = 0
        self.slow_s = 2.0
        self.wrong_next = 0
        self.refuse_days_of: set[str] = set()
        self.poison_ids: set[str] = set()  # a votes request holding one of these: 500
        self.down = False  # every request answered 500 (its database is gone)
        self.days: list[dict[str, Any]] = []  # bench-days answered 200, in order
        self.heartbeats: list[dict[str, Any]] = []  # PUT /api/v1/gateways/{m} bodies
        self.wrong_body = b"<html><body>It works!</body></html>"
        self.votes: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _wrong(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(portal.wrong_body)))
                self.end_headers()
                self.wfile.write(portal.wrong_body)

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body: Any = json.loads(self.rfile.read(n)) if n else {}
                auth = self.headers.get("Authorization", "")
                slow = False
                code: int
                answer: dict[str, Any]
                with portal.lock:
                    portal.requests.append((self.command, self.path, body, auth))
                    if auth != f"Bearer {portal.token}":
                        code, answer = 401, {"error": "token"}
                    elif portal.down:
                        code, answer = 500, {"error": "internal server error"}
                    elif self.path == "/api/v1/votes" and any(
                        v.get("id") in portal.poison_ids for v in body.get("votes", [])
                    ):
                        code, answer = 500, {"error": "internal server error"}
                    elif self.command == "GET" and self.path.startswith("/api/v1/polls"):
                        code, answer = 200, {"polls": portal.polls}
                    elif self.path.startswith("/api/v1/gateways/"):  # failures are for data
                        portal.heartbeats.append(body)
                        code, answer = 200, {"ok": True}
                    elif portal.fail_next > 0:
                        portal.fail_next -= 1
                        code, answer = 500, {"error": "try later"}
                    elif portal.wrong_next > 0:
                        portal.wrong_next -= 1
                        code, answer = 0, {}
                    elif self.path == "/api/v1/votes":
                        slow = portal.slow_next > 0
                        portal.slow_next -= int(slow)
                        acc, dup, rej = 0, 0, []
                        for v in body["votes"]:
                            if v["poll"] == "unknown-poll":
                                rej.append({"id": v["id"], "reason": "unknown poll"})
                            elif v["id"] in portal.votes:
                                dup += 1
                            else:
                                portal.votes[v["id"]] = v
                                acc += 1
                        code, answer = 200, {"accepted": acc, "duplicates": dup, "rejected": rej}
                    elif self.path == "/api/v1/bench-days":
                        bad = [d for d in body["days"] if d["bench"] in portal.refuse_days_of]
                        if bad:
                            code, answer = 400, {"error": "days[0].seat_occ_s: too large"}
                        else:
                            portal.days.extend(body["days"])
                            code, answer = 200, {"upserted": len(body["days"])}
                    else:
                        code, answer = 200, {"ok": True}
                if slow:  # committed, but the answer comes too late: the client retries
                    time.sleep(portal.slow_s)
                if code == 0:
                    self._wrong()
                else:
                    self._answer(code, answer)

            do_GET = do_POST = do_PUT = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def of(self, method: str, path: str) -> list[Any]:
        with self.lock:
            return [b for m, p, b, _ in self.requests if m == method and p.startswith(path)]


class Redirector:
    """An HTTP server that answers every request with a 302 to the same path on ``target``."""

    def __init__(self, target: str) -> None:
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def _redirect(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits += 1
                self.send_response(302)
                self.send_header("Location", target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _redirect  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        outer = self
        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
