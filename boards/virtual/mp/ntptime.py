# mypy: ignore-errors
# The virtual board's `ntptime`: answers with the board's own clock while the virtual link
# is up and NTP is reachable (machine.board.link_up, machine.board.ntp_ok).
import machine

host = "pool.ntp.org"
timeout = 1


def time():
    b = machine._board()
    if not b.link_up or not b.ntp_ok:
        raise OSError(110, "ETIMEDOUT")
    return int(b.clock.time())


def settime():
    time()  # the board's RTC is its clock already
