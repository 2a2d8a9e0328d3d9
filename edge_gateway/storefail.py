"""What a store error means for the writer: retry later (the disk, not the message), and
whether it is a full disk (said so in the log, /healthz and /metrics)."""

from __future__ import annotations

import sqlite3


def store_unavailable(exc: BaseException) -> bool:
    """True for a store error that no single message caused (so retrying later can help)."""
    if isinstance(exc, sqlite3.OperationalError):
        return True
    if isinstance(exc, OSError):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.InterfaceError | sqlite3.ProgrammingError
    )


def disk_full(exc: BaseException) -> bool:
    if getattr(exc, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
        return True
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        return True
    return "full" in str(exc).lower()
