"""Typed reads from one table of the gateway's TOML configuration, each problem naming its key.

The sections' parsers (:mod:`edge_gateway.config`, and each sink's own ``config`` module) read
through a :class:`Reader`, which notes a problem and goes on, so that one run lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edge_gateway.text import printable


class Reader:
    """Typed reads from one table, noting problems instead of stopping at the first."""

    def __init__(self, table: Mapping[str, Any], prefix: str, problems: list[str]) -> None:
        self.table = table
        self.prefix = prefix
        self.problems = problems

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def bad(self, key: str, why: str) -> None:
        self.problems.append(f"{self.name(key)}: {why}")

    def text(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        if key not in self.table:
            if required:
                self.bad(key, "required")
            return default
        value = self.table[key]
        if not isinstance(value, str):
            self.bad(key, f"must be a string (got {type(value).__name__})")
            return default
        if required and not value.strip():
            self.bad(key, "required, and must not be empty")
            return default
        return value

    def number(
        self,
        key: str,
        default: float,
        lo: float,
        hi: float,
        integer: bool = False,
    ) -> float:
        if key not in self.table:
            return default
        value = self.table[key]
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad(key, f"must be {kind} (got {type(value).__name__})")
            return default
        if integer and not float(value).is_integer():
            self.bad(key, f"must be {kind} (got {value})")
            return default
        if not lo <= value <= hi:
            self.bad(key, f"must be between {lo:g} and {hi:g} (got {value})")
            return default
        return int(value) if integer else float(value)

    def flag(self, key: str, default: bool) -> bool:
        if key not in self.table:
            return default
        value = self.table[key]
        if not isinstance(value, bool):
            self.bad(key, f"must be true or false (got {type(value).__name__})")
            return default
        return value

    def file(self, key: str, base: Path) -> str | None:
        value = self.text(key)
        if value is None:
            return None
        p = base / value if not os.path.isabs(value) else Path(value)
        if not p.is_file():
            self.bad(key, f"file {printable(value, 4096)} does not exist")
            return None
        return str(p)

    def url(self, key: str) -> str | None:
        value = self.text(key, required=True)
        if value is None:
            return None
        u = urlparse(value)
        if u.scheme not in ("http", "https") or not u.netloc:
            self.bad(key, f"must be an http:// or https:// URL (got {value!r})")
            return None
        return value.rstrip("/")

    def secret(self, key: str, env: str, base: Path, required: bool = False) -> str | None:
        """A secret from ``key``, ``key_file`` or the environment variable ``env``."""
        file_key = f"{key}_file"
        if key in self.table and file_key in self.table:
            self.bad(key, f"give either {self.name(key)} or {self.name(file_key)}, not both")
            return None
        if key in self.table:
            value = self.table[key]
            if not isinstance(value, str):
                self.bad(key, "must be a string")
                return None
            return value
        if file_key in self.table:
            path = self.file(file_key, base)
            if path is None:
                return None
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                self.bad(file_key, f"cannot read the file: {exc.strerror}")
                return None
        value = os.environ.get(env)
        if value:
            return value
        if required:
            self.bad(key, f"required (or {self.name(file_key)}, or the variable {env})")
        return None


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def plain_http(r: Reader, url: str | None, has_credential: bool, key: str = "url") -> None:
    """A token or password sent over plain HTTP to another machine can be read on the way."""
    allowed = r.flag("allow_plain_http", False)
    if not url or not has_credential or allowed:
        return
    u = urlparse(url)
    host = (u.hostname or "").lower()
    if u.scheme == "http" and host not in LOOPBACK_HOSTS and not host.startswith("127."):
        r.bad(
            key,
            f"plain http:// to {host} would send the token unencrypted: use https://, or set "
            f"{r.name('allow_plain_http')} = true on a network you trust",
        )
