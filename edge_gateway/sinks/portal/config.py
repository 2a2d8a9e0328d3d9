"""The ``[portal]`` section: the portal's URL and the municipality's token."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_gateway.config_reader import Reader, plain_http


@dataclass
class PortalConfig:
    url: str
    token: str | None = field(default=None, repr=False)
    poll_sync_s: float = 60


KEYS = frozenset({"url", "token", "token_file", "poll_sync_s", "allow_plain_http"})


def parse(r: Reader, base: Path) -> PortalConfig:
    """The ``[portal]`` table; a relative ``token_file`` is relative to ``base``."""
    portal = PortalConfig(
        url=r.url("url") or "",
        token=r.secret("token", "KLUPA_PORTAL_TOKEN", base, required=True),
        poll_sync_s=r.number("poll_sync_s", 60, 1, 86400),
    )
    plain_http(r, portal.url, bool(portal.token))
    return portal


def secrets(cfg: PortalConfig) -> list[str | None]:
    return [cfg.token]
