# Charging sessions on one port: plugged when the current stays above 50 mA for 3 s,
# unplugged when it stays below 20 mA for 10 s (phones trickle when nearly full).
from bench.runtime import const

_PLUG_MA = const(50)
_PLUG_MS = const(3000)
_UNPLUG_MA = const(20)
_UNPLUG_MS = const(10000)


class Session:
    def __init__(self, n):
        self.n = n
        self.plugged = False
        self.above_ms = 0
        self.below_ms = 0
        self.ms = 0  # session duration so far
        self.nj = 0  # energy since the first sample above the plug threshold

    def update(self, mv, ma, dt_ms):
        # Returns (seconds, mWh) when a session ends, else None.
        if not self.plugged:
            if ma > _PLUG_MA:
                self.above_ms += dt_ms
                self.ms += dt_ms
                self.nj += mv * ma * dt_ms
                if self.above_ms >= _PLUG_MS:
                    self.plugged = True
                    self.below_ms = 0
            else:
                self.above_ms = 0
                self.ms = 0
                self.nj = 0
            return None
        self.ms += dt_ms
        self.nj += mv * ma * dt_ms
        if ma < _UNPLUG_MA:
            self.below_ms += dt_ms
            if self.below_ms >= _UNPLUG_MS:
                return self.end(self.below_ms)
        else:
            self.below_ms = 0
        return None

    def end(self, tail_ms=0):
        # The session ends where the current fell away (or now, when the port is switched off).
        if not self.plugged:
            self.above_ms = self.ms = self.nj = 0
            return None
        s = (self.ms - tail_ms + 500) // 1000
        mwh = (self.nj + 1800000000) // 3600000000
        self.plugged = False
        self.above_ms = self.below_ms = self.ms = self.nj = 0
        return s, mwh
