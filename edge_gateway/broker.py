"""The one place an MQTT client to the municipality's broker is made.

Two users connect: the gateway (its own user from ``[mqtt]``, a persistent session) and the
ops user (``ops-{m}``: ``klupa gateway cmd`` and the rollout, :mod:`edge_gateway.commands`).
Both connect with ``[mqtt]``'s TLS settings and MQTT 3.1.1; only the user, the client id and
the session differ.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_gateway.config import MqttConfig


def client(
    c: MqttConfig,
    client_id: str,
    *,
    clean_session: bool,
    username: str | None,
    password: str | None,
) -> mqtt.Client:
    """A client for ``[mqtt]``'s broker, not yet connected; no user: anonymous."""
    out = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
    )
    if username:
        out.username_pw_set(username, password)
    if c.tls:
        out.tls_set(
            ca_certs=c.ca_file,
            certfile=c.certfile,
            keyfile=c.keyfile,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    return out
