# mypy: ignore-errors
# The virtual board's `network`: station and access point over machine.board's link state
# (board.link_up, board.rssi, board.ap_clients).
import machine

STA_IF, AP_IF = 0, 1
STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP, STAT_NO_AP_FOUND = 1000, 1001, 1010, 201


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface
        self._active = False
        self._wanted = False
        self._config = {}

    def active(self, on=None):
        if on is not None:
            self._active = bool(on)
        return self._active

    def connect(self, ssid=None, key=None, **kw):
        if not self._active:
            raise OSError("Wi-Fi Internal Error")
        self._wanted = True

    def disconnect(self):
        self._wanted = False

    def isconnected(self):
        if self.interface == AP_IF:
            return self._active
        return self._active and self._wanted and machine._board().link_up

    def status(self, param=None):
        b = machine._board()
        if param == "rssi":
            if not self.isconnected():
                raise OSError("not connected")
            return b.rssi
        if param == "stations":
            if self.interface != AP_IF or not self._active:
                raise OSError("Wifi Invalid Mode")  # the ESP32: only an active AP has any
            return [(bytes([2, 0, 0, 0, 0, i]),) for i in range(b.ap_clients)]
        if param is not None:
            raise ValueError("unknown status param")
        if self.isconnected():
            return STAT_GOT_IP
        return STAT_NO_AP_FOUND if self._wanted else STAT_IDLE

    def config(self, *args, **kw):
        if kw:
            self._config.update(kw)
            return None
        if args:
            if args[0] == "mac":
                uid = machine._board().uid[-3:]
                return b"\x24\x0a\xc4" + bytes(3 - len(uid)) + uid
            return self._config.get(args[0])
        return None

    def ifconfig(self, *a):
        return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")
