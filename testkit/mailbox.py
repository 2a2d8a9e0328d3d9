"""A real SMTP server (aiosmtpd) in the test process that keeps every message it takes.

``smtp_server()`` starts it on a free loopback port and stops it when the block ends (also
when the test fails); it yields the ``Inbox`` and the port. Keyword arguments go to aiosmtpd's
``Controller`` (a TLS context, STARTTLS, an authenticator).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from klupa.services import free_port


class Inbox:
    """The messages the server took, parsed, in the order they came."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@contextmanager
def smtp_server(**controller: Any) -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    c = Controller(inbox, hostname="127.0.0.1", port=port, **controller)
    c.start()
    try:
        yield inbox, port
    finally:
        c.stop()
