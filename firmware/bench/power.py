# The power manager: state of charge by coulomb counting, corrected toward the chemistry's
# open-circuit voltage only at rest, reset on full charge; and the load state with the
# hysteresis of docs/protocol.md (Power states). Charge is kept in integer mA*ms.
#
# A real battery's voltage at rest is not its OCV curve: it settles for minutes after the
# current changes (relaxation), sits above the curve after charging and below after
# discharging (hysteresis: ~80 mV on a LiFePO4 pack, 15 % of SoC in its flat middle), and
# moves with temperature. So the voltage corrects the count only after the current has
# stayed below _REST_MA for _REST_HOLD_MS, and only as far as the count lies outside the SoC
# span of the voltage +- the profile's "ocv_band_v": where the curve is flat that span is wide
# and the count stands; near empty (and for lead-acid's sloped curve) it is narrow and binds.
# Currents within _DEADBAND_MA are counted as none, as a BMV does, so the shunt's offset does
# not integrate into drift while the battery idles. Under a charge current, however small, the
# terminals read above the OCV (LiFePO4's charge branch, lead-acid's overpotential near full),
# so then the voltage may only pull the count down. The count alone never says 100 %; near
# full a lead-acid battery stores less of each amp-hour as it gasses (the profile's
# "gassing_soc" and "charge_efficiency_full"), and it is full at a lower tail ("tail_c").
from bench.protocol import POWER_STATES
from bench.runtime import const

_REST_MA = const(200)
_REST_HOLD_MS = const(300000)  # 5 min below _REST_MA before the voltage counts as at rest
_DEADBAND_MA = const(20)
_OCV_BAND_MV = const(60)  # unless the profile's battery says "ocv_band_v"
_OCV_TAU_MS = const(1800000)  # at rest, close the gap to the OCV span with a 30-min constant
_FULL_HOLD_MS = const(180000)
_LOW_V_HOLD_MS = const(10000)


def interpolate(curve, x):
    if x <= curve[0][0]:
        return curve[0][1]
    for i in range(1, len(curve)):
        x0, y0 = curve[i - 1]
        x1, y1 = curve[i]
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[-1][1]


class PowerManager:
    def __init__(self, battery, soc_pct=None, machine=None):
        # battery: the board profile's "battery" object; machine: the module, whose RTC memory
        # keeps the count across a reset (see resume).
        self.capacity = int(battery["capacity_ah"] * 3600000000)  # mA*ms
        self.eff = int(battery["charge_efficiency"] * 1000)
        self.full_mv = int(battery["full_v"] * 1000)
        # Full: the charge voltage with a tail below tail_c * capacity held _FULL_HOLD_MS (C/20
        # unless the profile says; a lead-acid battery still takes C/20 at ~97 %).
        self.tail_ma = int(battery["capacity_ah"] * 1000 * battery.get("tail_c", 0.05))
        # Charge acceptance: from gassing_soc % the efficiency falls linearly to
        # charge_efficiency_full at 100 %: (the knee in mA*ms, the fall in 0.1 %, the charge
        # from knee to full), or None when the profile has no gassing_soc (LiFePO4).
        self.taper = None
        if "gassing_soc" in battery:
            knee = self.capacity * int(battery["gassing_soc"]) // 100
            full = int(battery.get("charge_efficiency_full", battery["charge_efficiency"]) * 1000)
            self.taper = (knee, self.eff - full, self.capacity - knee)
        # OCV curve inverted: mV -> SoC % (whole millivolts: small ints, no float objects)
        self.ocv = tuple((int(p[1] * 1000 + 0.5), p[0]) for p in battery["ocv"])
        self.band_mv = int(battery.get("ocv_band_v", _OCV_BAND_MV / 1000) * 1000 + 0.5)
        self.rest_ms = 0
        th = battery["thresholds"]
        self.th = {}
        for k in th:
            self.th[k] = th[k]
        self.q = self.capacity * 8 // 10 if soc_pct is None else int(self.capacity * soc_pct / 100)
        self.state = "normal"
        self.full_ms = 0
        self.low_v_ms = 0
        self.seeded = soc_pct is not None
        self.machine = machine

    def resume(self):
        # After a reset (not a power cut, which clears RTC memory) the count and state go on
        # where update() left them: the voltage under a load or a charge would seed a LiFePO4
        # count 15 points off. RTC memory: b"kSoC", the capacity in mAh (3 bytes: another
        # battery's count is not this one's), soc_cp * 4 + state (2 bytes). -> False for
        # anything else, and the first sample seeds the count from the voltage.
        d = self.machine.RTC().memory()
        if len(d) != 9 or d[:4] != b"kSoC":
            return False
        k = int.from_bytes(d[7:], "big")
        if int.from_bytes(d[4:7], "big") != self.capacity // 3600000 or k > 40002 or k & 3 > 2:
            return False
        self.q = self.capacity * (k >> 2) // 10000
        self.state = POWER_STATES[k & 3]
        self.seeded = True
        return True

    def set_thresholds(self, saver_soc=None, critical_soc=None):
        # `set` moves the entry thresholds; the exit thresholds keep their hysteresis gap.
        if saver_soc is not None:
            gap = self.th["normal_soc"] - self.th["saver_soc"]
            self.th["saver_soc"] = saver_soc
            self.th["normal_soc"] = min(100, saver_soc + gap)
        if critical_soc is not None:
            gap = self.th["recover_soc"] - self.th["critical_soc"]
            self.th["critical_soc"] = critical_soc
            self.th["recover_soc"] = critical_soc + gap

    def soc_cp(self):
        # SoC in 0.01 %
        v = self.q * 10000 // self.capacity
        return 0 if v < 0 else (10000 if v > 10000 else v)

    def update(self, mv, ma, dt_ms):
        # One sample of the battery shunt (ma > 0 charging). Returns (old, new) on a change.
        if not self.seeded:  # first sample: start from the voltage rather than a guess
            self.q = int(self.capacity * interpolate(self.ocv, mv) / 100)
            self.seeded = True
        if -_DEADBAND_MA < ma < _DEADBAND_MA:
            ma = 0
        if ma > 0:
            # Counting alone stops at 99 %: 100 % is the full-charge reset's to say. Near full
            # a battery stores less of the charge than its efficiency says (lead-acid gasses).
            top = self.capacity * 99 // 100
            if self.q < top:
                eff = self.eff
                t = self.taper
                if t is not None and self.q > t[0]:
                    eff -= t[1] * (self.q - t[0]) // t[2]
                self.q = min(top, self.q + ma * dt_ms * eff // 1000)
        else:
            self.q += ma * dt_ms
        if -_REST_MA < ma < _REST_MA:
            if self.rest_ms <= _REST_HOLD_MS:  # stops counting there: stays a small int
                self.rest_ms += dt_ms
        else:
            self.rest_ms = 0
        if self.rest_ms > _REST_HOLD_MS:
            cap = self.capacity
            lo = int(cap * interpolate(self.ocv, mv - self.band_mv) / 100)
            hi = int(cap * interpolate(self.ocv, mv + self.band_mv) / 100)
            if self.q < lo and ma <= 0:  # a charge current lifts the voltage: no pull up
                self.q += (lo - self.q) * dt_ms // _OCV_TAU_MS
            elif self.q > hi:
                self.q -= (self.q - hi) * dt_ms // _OCV_TAU_MS
        if mv >= self.full_mv and 0 <= ma < self.tail_ma:
            self.full_ms += dt_ms
            if self.full_ms >= _FULL_HOLD_MS:
                self.q = self.capacity
        else:
            self.full_ms = 0
        if self.q > self.capacity:
            self.q = self.capacity
        if self.q < 0:
            self.q = 0
        if ma < 0 and mv < self.th["critical_v"] * 1000:
            self.low_v_ms += dt_ms
        else:
            self.low_v_ms = 0
        change = self.decide(mv)
        if self.machine is not None:  # RTC memory is RAM: each sample, for resume()
            k = self.soc_cp() * 4 + POWER_STATES.index(self.state)
            mah = self.capacity // 3600000
            self.machine.RTC().memory(b"kSoC" + mah.to_bytes(3, "big") + k.to_bytes(2, "big"))
        return change

    def decide(self, mv):
        soc = self.soc_cp() / 100
        th = self.th
        old = self.state
        new = old
        low = soc < th["critical_soc"] or self.low_v_ms >= _LOW_V_HOLD_MS
        if old == "normal":
            if low:
                new = "critical"
            elif soc < th["saver_soc"]:
                new = "saver"
        elif old == "saver":
            if low:
                new = "critical"
            elif soc >= th["normal_soc"]:
                new = "normal"
        elif soc >= th["recover_soc"] and mv >= th["recover_v"] * 1000:
            new = "saver"
        if new != old:
            self.state = new
            return old, new
        return None
