"""Log lines that a bench's messages make, limited: a bench must not flood the journal.

The journal lives on the Pi's SD card with every bench's records. A bench that flaps its
Status, streams fault events or votes past its cap would otherwise write a line per message,
as fast as it can send. :class:`BurstLog` lets ``burst`` lines of one kind per subject (a
bench) through per window; the next says the rest are counted, not logged, and the first
line of the following window says how many were left out.
"""

from __future__ import annotations

import logging
import time
from typing import Any

BURST = 10
WINDOW_S = 60.0


class BurstLog:
    """At most ``burst`` lines per (subject, kind) per ``window_s``; thread-safe enough for
    one writer per instance (each user keeps its own)."""

    def __init__(self, logger: logging.Logger, burst: int = BURST, window_s: float = WINDOW_S):
        self.logger = logger
        self.burst = burst
        self.window_s = window_s
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}  # window start, lines

    def log(self, level: int, subject: str, kind: str, fmt: str, *args: Any) -> None:
        now = time.monotonic()
        key = (subject, kind)
        start, n = self.seen.get(key, (now, 0))
        if now - start >= self.window_s:
            if n > self.burst:
                self.logger.warning(
                    "%s: %d more %s lines were not logged", subject, n - self.burst, kind
                )
            start, n = now, 0
        n += 1
        if len(self.seen) > 10_000:
            self.seen.clear()
        self.seen[key] = (start, n)
        if n <= self.burst:
            self.logger.log(level, fmt, *args)
        elif n == self.burst + 1:
            self.logger.warning(
                "%s: more than %d %s lines in %.0f s; the rest are counted, not logged",
                subject,
                self.burst,
                kind,
                self.window_s,
            )
