"""Is the system clock synchronised? The kernel's own answer (adjtimex), as chrony sets it.

A Raspberry Pi has no battery clock: after a power cut it starts at the last saved time until
NTP has answered. Judging a record's ``ts`` against such a clock would quarantine good records
or take bad ones, so the gateway takes nothing before the kernel says the clock is in sync.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised (STA_UNSYNC)


def clock_synchronised() -> bool:
    """True when the kernel reports the clock synchronised (adjtimex state != TIME_ERROR).

    Where the kernel cannot be asked (not Linux), the answer is True: there the operator's
    `[clock] require_sync` and the service manager's time-sync ordering decide.
    """
    if not sys.platform.startswith("linux"):
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, with room to spare; modes = 0
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return True
    return state >= 0 and state != TIME_ERROR
