# Windows: exact integer integration of the samples between two telemetry records.
# Energy and averages come from the elapsed ticks of each sample, in integers: the ESP32's
# single-precision floats would stop adding small increments to a large total.


class Channel:
    # One voltage/current pair: sums of mV*ms, mA*ms and mV*mA*ms (= nJ) over the window.
    def __init__(self):
        self.reset()

    def reset(self):
        self.mv_ms = 0
        self.ma_ms = 0
        self.nj = 0
        self.ms = 0

    def add(self, mv, ma, dt_ms):
        self.mv_ms += mv * dt_ms
        self.ma_ms += ma * dt_ms
        self.nj += mv * ma * dt_ms
        self.ms += dt_ms

    def avg_mv(self):
        return _div_round(self.mv_ms, self.ms) if self.ms else 0

    def avg_ma(self):
        return _div_round(self.ma_ms, self.ms) if self.ms else 0

    def mwh(self):
        # nJ -> mWh: 1 mWh = 3.6 J = 3.6e9 nJ
        return _div_round(self.nj, 3600000000)


def _div_round(a, b):
    if a < 0:
        return -((-a + b // 2) // b)
    return (a + b // 2) // b


class Window:
    def __init__(self, port_numbers):
        self.solar = Channel()
        self.batt = Channel()
        self.ports = {}
        for n in port_numbers:
            self.ports[n] = Channel()
        self.plugged = {}
        self.occ_ms = 0
        self.touches = 0
        self.rssi = -127
        self.clients = 0
        self.env = None
        self.started = None

    def reset(self, now):
        self.solar.reset()
        self.batt.reset()
        for n in self.ports:
            self.ports[n].reset()
            self.plugged[n] = False
        self.occ_ms = 0
        self.touches = 0
        self.started = now

    def telemetry(self, period, soc_cp, power, heap, port_on):
        ports = []
        for n in sorted(self.ports):
            c = self.ports[n]
            ports.append(
                (
                    n,
                    port_on.get(n, False),
                    self.plugged.get(n, False),
                    max(0, c.avg_ma()),
                    max(0, c.mwh()),
                )
            )
        return {
            "period": period,
            "solar_mv": max(0, self.solar.avg_mv()),
            "solar_ma": max(0, self.solar.avg_ma()),
            "solar_mwh": max(0, self.solar.mwh()),
            "batt_mv": max(0, self.batt.avg_mv()),
            "batt_ma": self.batt.avg_ma(),
            "soc_cp": soc_cp,
            "rssi": self.rssi,
            "clients": self.clients,
            "occ": min(period, (self.occ_ms + 500) // 1000),
            "touches": self.touches,
            "power": power,
            "heap": heap,
            "env": self.env,
            "ports": ports,
        }
