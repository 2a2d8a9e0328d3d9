"""The ``[portal]`` section: the portal's URL and the municipality's token."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PortalConfig:
    url: str
    token: str | None = field(default=None, repr=False)
    poll_sync_s: float = 60
