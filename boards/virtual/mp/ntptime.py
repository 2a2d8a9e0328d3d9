# mypy: ignore-errors
# (MicroPython code for the VM; the CPython original is boards/virtual/hardware.py.)
# The virtual board's `ntptime`: answers with the VM's own clock while the virtual link is
# up and NTP is reachable (machine.board.link_up, machine.board.ntp_ok).
import time as _time

import machine

host = "pool.ntp.org"
timeout = 1


def time():
    b = machine._board()
    if not b.link_up or not b.ntp_ok:
        raise OSError(110, "ETIMEDOUT")
    return int(_time.time())


def settime():
    time()  # the VM's RTC is the host's clock already
