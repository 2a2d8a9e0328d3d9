# Capacitive touch pads read through ESP32 TouchPad channels; this module only sees numbers.
# Per pad a baseline (a slow rolling average, so outdoor drift from heat, humidity and dew is
# followed) that freezes while the pad is pressed. A press is a deviation from the baseline,
# in the profile's direction, of more than `sensitivity` x baseline. On release:
#   0.3 s .. 1.5 s held  -> "press" (a vote press)
#   shorter / 1.5 .. 2 s -> "touch" (counted, not a vote; under 0.1 s is noise)
#   reaching 2 s         -> "hold" at once (the language gesture, never a vote)
#   30 s                 -> re-baselined as stuck, one `touch_stuck` fault
# The two outer pads held together are the technician's chord: neither counts as a press,
# touch or hold from then on, and after 5 s together it is "service" (the service screen).
# When most pads deviate at once it is rain or a wet cloth: presses in progress are dropped,
# one `touch_wet` fault is raised for the episode, and nothing counts until all are dry.
#   read(i)                 raw reading of pad i (machine.TouchPad(...).read() on the bench)
#   touch                   the board profile's "touch" section: pins, direction, sensitivity
#   now_ms()                ticks clock
#   emit(kind, pad)         "down" (a pad went down: wakes the display), "press", "touch", "hold",
#                           "service" (pad 0: the outer pads held together for 5 s)
#   emit_fault(code, detail)
from bench.runtime import const, ticks_diff

_PRESS_MIN_MS = const(300)
_PRESS_MAX_MS = const(1500)
_HOLD_MS = const(2000)
_STUCK_MS = const(30000)
_NOISE_MS = const(100)
_CHORD_MS = const(5000)
_WET_CLEAR_MS = const(60000)  # dry this long before another wet episode is reported
_FP = const(4)  # baselines are kept x16 so slow drift is not lost to integer rounding
_AVG = const(7)  # rolling average weight 1/128 per sample

_IDLE = const(0)
_DOWN = const(1)
_HELD = const(2)  # the hold gesture has fired
_SPOILED = const(3)  # dropped by the wet detector: ends silently
_CHORD = const(4)  # one of the outer pads held together: ends silently


class TouchPads:
    def __init__(self, read, touch, now_ms, emit, emit_fault):
        self.read = read
        self.n = len(touch["pins"])
        self.falls = touch.get("direction", "falls") == "falls"
        self.sens_q10 = int(float(touch["sensitivity"]) * 1024 + 0.5)
        self.now_ms = now_ms
        self.emit = emit
        self.emit_fault = emit_fault
        self.base = [None] * self.n  # x16
        self.state = [_IDLE] * self.n
        self.since = [0] * self.n
        self.touches = 0  # every press, touch and hold, for the window's touch.n
        self.wet = False
        self._dry_since = None
        self._wet_reported = False
        self.chord = False  # both outer pads are down together
        self._chord_since = 0
        self._chord_fired = False

    def baselines(self):
        return [None if b is None else b >> _FP for b in self.base]

    def active(self):
        # Any pad down (a press or touch in progress)?
        for st in self.state:
            if st != _IDLE:
                return True
        return False

    def wake_levels(self):
        # Per pad the reading a press goes past (None before a baseline): the threshold the
        # ESP32's touch wake-up from light sleep needs (TouchPad.config), which is 0 (never)
        # until set.
        out = []
        for b in self.base:
            if b is not None:
                b >>= _FP
                d = (b * self.sens_q10) >> 10
                b = b - d if self.falls else b + d
            out.append(b)
        return out

    def take_touches(self):
        n = self.touches
        self.touches = 0
        return n

    def _deviation(self, i, raw):
        base = self.base[i] >> _FP
        return (base - raw) if self.falls else (raw - base), base

    def sample(self):
        # Read every pad once; call every 20..50 ms.
        now = self.now_ms()
        down = 0
        for i in range(self.n):
            raw = self.read(i)
            if self.base[i] is None:
                self.base[i] = raw << _FP
                continue
            dev, base = self._deviation(i, raw)
            limit = (base * self.sens_q10) >> 10
            st = self.state[i]
            if st == _IDLE:
                if dev > limit:
                    self.state[i] = _SPOILED if self.wet else _DOWN
                    self.since[i] = now
                    down += 1
                    if not self.wet:
                        self.emit("down", i)
                elif dev < -limit:
                    self.base[i] = raw << _FP  # came back from a stuck level, or a jump
                else:
                    self.base[i] += ((raw << _FP) - self.base[i]) >> _AVG
                continue
            held = ticks_diff(now, self.since[i])
            if dev <= (limit * 3) >> 2:  # released (with hysteresis)
                self.state[i] = _IDLE
                if st == _DOWN and held >= _NOISE_MS:
                    self.touches += 1
                    kind = "press" if _PRESS_MIN_MS <= held <= _PRESS_MAX_MS else "touch"
                    self.emit(kind, i)
                continue
            down += 1
            if held >= _STUCK_MS:
                self.base[i] = raw << _FP
                self.state[i] = _IDLE
                if st != _SPOILED:
                    self.emit_fault(
                        "touch_stuck",
                        "pad %d pressed for %d s; re-baselined" % (i + 1, held // 1000),
                    )
            elif st == _DOWN and held >= _HOLD_MS:
                self.state[i] = _HELD
                self.touches += 1
                self.emit("hold", i)
        if self._chord(now) and down == 2:
            down = 1  # the technician's two fingers alone are not rain
        self._water(down, now)

    def _chord(self, now):
        # Both outer pads down together: mark them, and fire "service" once after 5 s.
        a = self.state[0]
        b = self.state[self.n - 1]
        if self.n < 2 or a in (_IDLE, _SPOILED) or b in (_IDLE, _SPOILED):
            self.chord = False
            return False
        self.state[0] = self.state[self.n - 1] = _CHORD
        if not self.chord:
            self.chord = True
            self._chord_since = now
            self._chord_fired = False
        elif not self._chord_fired and ticks_diff(now, self._chord_since) >= _CHORD_MS:
            self._chord_fired = True
            self.emit("service", 0)
        return True

    def _water(self, down, now):
        if self.n >= 2 and down * 2 > self.n:
            if not self.wet:
                self.wet = True
                for i in range(self.n):
                    if self.state[i] != _IDLE:
                        self.state[i] = _SPOILED
                if not self._wet_reported:
                    self._wet_reported = True
                    self.emit_fault(
                        "touch_wet", "%d of %d pads wet; presses ignored" % (down, self.n)
                    )
            self._dry_since = None
        elif self.wet and down == 0:
            self.wet = False
            self._dry_since = now
        elif not self.wet and self._dry_since is not None and down == 0:
            if ticks_diff(now, self._dry_since) >= _WET_CLEAR_MS:
                self._wet_reported = False
                self._dry_since = None
