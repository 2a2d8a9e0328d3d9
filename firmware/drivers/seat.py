# Seat pressure mat on a GPIO input, debounced: a new level counts only after it has held
# for debounce_ms across polls.
class Seat:
    def __init__(self, pin, active_low=True, debounce_ms=500):
        self.pin = pin
        self.active_low = active_low
        self.debounce_ms = debounce_ms
        self.occupied = False
        self.since = None

    def raw(self):
        v = self.pin.value()
        return (v == 0) if self.active_low else (v == 1)

    def poll(self, now_ms, diff):
        # diff: ticks_diff; passed in so this driver needs nothing but its pin.
        r = self.raw()
        if r == self.occupied:
            self.since = None
        elif self.since is None:
            self.since = now_ms
        elif diff(now_ms, self.since) >= self.debounce_ms:
            self.occupied = r
            self.since = None
        return self.occupied
