"""Polls as the protocol carries them (docs/protocol.md), for the tests of the gateway, the
portal and the bench's screens."""

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


def poll_options(*pairs: tuple[str, dict[str, str]]) -> list[dict[str, Any]]:
    """A poll's ``options``, each given as an (id, label) pair."""
    return [{"id": id_, "label": label} for id_, label in pairs]
