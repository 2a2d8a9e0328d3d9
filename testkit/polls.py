"""Polls as the protocol carries them (docs/protocol.md), for the gateway's and the portal's tests."""

from __future__ import annotations

from typing import Any


def protocol_poll(poll_id: str, opens: float, closes: float, /, **fields: Any) -> dict[str, Any]:
    """A poll: the park-lights question in Bosnian, yes (Da) or no (Ne), unless ``fields`` give
    others; ``fields`` also add keys (a portal poll's ``municipalities``, ``results``)."""
    return {
        "v": 1,
        "id": poll_id,
        "opens": opens,
        "closes": closes,
        "question": {"bs": "Da li želite više rasvjete u parku?"},
        "options": [{"id": "yes", "label": {"bs": "Da"}}, {"id": "no", "label": {"bs": "Ne"}}],
        **fields,
    }
