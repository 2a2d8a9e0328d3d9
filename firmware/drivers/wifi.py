# Wi-Fi statistics: uplink RSSI from the station interface and the number of devices on the
# bench's own access point (where the board profile enables one).
class WifiStats:
    def __init__(self, sta, ap=None):
        self.sta = sta
        self.ap = ap

    def rssi(self):
        try:
            if not self.sta.isconnected():
                return -127
            r = int(self.sta.status("rssi"))
        except (OSError, ValueError, TypeError):
            return -127
        return -127 if r < -127 else (0 if r > 0 else r)

    def clients(self):
        if self.ap is None:
            return 0
        try:
            return len(self.ap.status("stations"))
        except (OSError, ValueError, TypeError):
            return 0
