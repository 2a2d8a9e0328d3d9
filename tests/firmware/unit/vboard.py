# The virtual board for the unit tests, under pytest and inside the MicroPython VM: the one
# model of boards/virtual/mp/ in both, through the VM's own `machine` (machine.use(profile))
# there and as boards/virtual/hardware.py's VirtualBoard on CPython.
import json
import sys

MICROPYTHON = sys.implementation.name == "micropython"
if MICROPYTHON:
    PROFILES = "/boards"
else:
    import pathlib

    PROFILES = str(pathlib.Path(__file__).resolve().parents[3] / "boards")


def profile(name):
    with open(PROFILES + "/" + name + ".json") as f:
        return json.load(f)


def make_board(prof, clock=None):
    # (board, machine module) for one bench of this profile; on CPython on `clock` (a
    # VirtualClock; a new one running from now when None).
    if MICROPYTHON:
        import machine

        return machine.use(prof), machine
    from boards.virtual.clock import VirtualClock
    from boards.virtual.hardware import VirtualBoard

    board = VirtualBoard(prof, clock or VirtualClock())
    return board, board.machine


def radio_modules(board):
    # (network, esp32, ntptime) of this board.
    if MICROPYTHON:
        import esp32
        import network
        import ntptime

        return network, esp32, ntptime
    return board.network, board.esp32, board.ntptime
