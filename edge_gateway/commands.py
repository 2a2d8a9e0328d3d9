"""The ops user's link to the benches: commands published, their acks collected.

One MQTT connection as ``ops-{m}`` (never the gateway's user, docs/protocol.md, Names) that may do
only what the broker's ACL lets that user do: write ``…/+/cmd`` and read ``…/+/cmd/ack``. A
command is published once (QoS 1) under a fresh id; its ack is kept until asked for. Benches
connect with a clean session, so a command to an offline bench is lost: the caller times out
and decides what then. ``klupa gateway cmd`` sends one command through it, the rollout many.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import threading
from typing import Any

import paho.mqtt.client as mqtt

from edge_gateway import broker
from edge_gateway import protocol as P
from edge_gateway.config import Config
from klupa.contract import ops_user

OPS_PASSWORD_ENV = "KLUPA_OPS_PASSWORD"


class LinkError(Exception):
    """The broker cannot be reached, or refuses the ops user what it needs."""


class Refused(LinkError):
    """The broker answered, and refused the ops user (its password, or the ACL)."""


class CommandLink:
    """Send commands to a municipality's benches and collect their acks (thread-safe)."""

    def __init__(
        self, cfg: Config, user: str, password: str | None, bench: str | None = None
    ) -> None:
        """Acks of every bench, or of ``bench`` alone."""
        self.cfg = cfg
        self.user = user
        self.ack_topic = P.topic(cfg.municipality, bench or "+", "cmd/ack")
        # The acks of the commands this link sent, by id (each from the bench it went to), and
        # the others its subscription sees (a command of an earlier run), bounded.
        self.acks: dict[str, dict[str, Any]] = {}
        self.other_acks: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, str] = {}  # id -> the bench the command went to
        self.lock = threading.Condition()
        self.subscribed = threading.Event()
        self.refused: list[str] = []
        # On the Pi the broker replaces the client id by the username anyway
        # (use_username_as_clientid), so there two ops connections at once end each other's;
        # a broker without that setting (klupa demo, tests) lets several run side by side.
        self.client = broker.client(
            cfg.mqtt,
            f"{user}-{secrets.token_hex(3)}",
            clean_session=True,
            username=user,
            password=password,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, c: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
        if reason.is_failure:
            self.refused.append(str(reason))
            self.subscribed.set()
        else:
            c.subscribe(self.ack_topic, qos=1)  # again after every reconnect

    def _on_subscribe(self, c: mqtt.Client, u: Any, mid: int, codes: Any, p: Any) -> None:
        if any(code.is_failure for code in codes):
            self.refused.append(f"subscription to {self.ack_topic} refused")
        self.subscribed.set()

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        """An ack counts only from the bench its command went to: on that bench's topic, in
        its name. Another bench cannot answer for it, and a flood of acks for ids never sent
        cannot push out the ack of one that was."""
        try:
            _, bench, _ = P.parse_topic(msg.topic)
            obj = json.loads(msg.payload)
        except (P.ProtocolError, ValueError):
            return
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            return
        if obj.get("bench") != bench:
            return
        cid = obj["id"]
        with self.lock:
            target = self.targets.get(cid)
            if target is None:
                if len(self.other_acks) > 10_000:
                    self.other_acks.clear()
                self.other_acks[cid] = obj
            elif target == bench:
                self.acks[cid] = obj
            else:
                return
            self.lock.notify_all()

    def open(self, timeout: float = 10.0) -> None:
        where = f"{self.cfg.mqtt.host}:{self.cfg.mqtt.port}"
        try:
            self.client.connect(self.cfg.mqtt.host, self.cfg.mqtt.port, keepalive=30)
        except OSError as exc:
            raise LinkError(f"cannot reach the broker at {where}: {exc}") from None
        self.client.loop_start()
        if not self.subscribed.wait(timeout) or self.refused:
            why = self.refused[0] if self.refused else "no answer"
            self.close()
            raise Refused(
                f"the broker at {where} did not let {self.user} read {self.ack_topic} ({why})"
            )

    def send(self, bench: str, op: str, args: dict[str, Any]) -> str:
        """Publish a command; its id, to look its ack up with :meth:`ack`."""
        cid = f"c-{secrets.token_hex(4)}"
        command = {"id": cid, "op": op, "args": args}
        with self.lock:
            self.targets[cid] = bench
        self.client.publish(P.topic(self.cfg.municipality, bench, "cmd"), P.encode(command), qos=1)
        return cid

    def ack(self, cid: str) -> dict[str, Any] | None:
        with self.lock:
            return self._ack(cid)

    def _ack(self, cid: str) -> dict[str, Any] | None:
        if cid in self.targets:
            return self.acks.get(cid)
        return self.other_acks.get(cid)

    def wait_ack(self, cid: str, timeout: float) -> dict[str, Any] | None:
        """The ack of ``cid`` once it is here, or None after ``timeout`` seconds."""
        with self.lock:
            self.lock.wait_for(lambda: self._ack(cid) is not None, timeout)
            return self._ack(cid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def add_ops_arguments(p: argparse.ArgumentParser) -> None:
    """``--user`` and ``--password-file``, for :func:`ops_credentials`."""
    p.add_argument("--user", help="MQTT user (default: ops-{municipality}, never the gateway's)")
    p.add_argument(
        "--password-file",
        help=f"the user's password (default: ${OPS_PASSWORD_ENV}, else "
        "ops-{municipality}-mqtt.pass beside --config)",
    )


def ops_credentials(args: argparse.Namespace, cfg: Config) -> tuple[str, str | None, str]:
    """The command tool's own MQTT user and password, and where the password came from.

    Never the gateway's: with ``use_username_as_clientid`` the gateway's credentials would
    take over its persistent session (docs/protocol.md, Names). The password comes from
    ``--password-file``, else ``$KLUPA_OPS_PASSWORD``, else ``ops-{m}-mqtt.pass`` beside the
    gateway's configuration (``/etc/klupa/ops-mostar-mqtt.pass``), else none (a broker that
    takes anonymous clients, as in ``klupa demo``). Raises OSError for an unreadable file.
    """
    user = args.user or ops_user(cfg.municipality)
    if args.password_file:
        return user, _first_line(args.password_file), args.password_file
    if os.environ.get(OPS_PASSWORD_ENV):
        return user, os.environ[OPS_PASSWORD_ENV], OPS_PASSWORD_ENV
    beside = os.path.join(os.path.dirname(os.path.abspath(args.config)), f"{user}-mqtt.pass")
    if os.path.exists(beside):
        return user, _first_line(beside), beside
    return user, None, f"no password (--password-file, {OPS_PASSWORD_ENV} or {beside})"


def _first_line(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.readline().strip()
