# mypy: ignore-errors
# (MicroPython code, run in the VM by tests/firmware/test_press_gc.py through run_script.)
# 1,000 vote presses as benchmarks/vm/pressrun.py makes them, the pads sampled as Front.run()
# does (TouchPads.sample(), then Front.idle()), with the firmware's `gc` replaced by a spy
# that counts every collection asked for, and whether it came between a press being
# recognised and its confirmation frame reaching I2C. The heap growing inside that stretch is
# counted too: this port grows its heap where an ESP32's allocator, out of room, would collect.
# Nothing else collects: no harness call of gc.collect(), no gc.threshold(). Then 10 presses
# with a collection put into the press path (the vote callback), which the spy must see.
# Prints "@@press-gc {json}".
import asyncio
import gc as _gc
import json
import sys

PRESSES = 1000


class Spy:
    def __init__(self):
        self.idle = 0
        self.in_path = 0
        self.grown = 0
        self.path = False

    def collect(self):
        if self.path:
            self.in_path += 1
        else:
            self.idle += 1
        _gc.collect()

    def mem_free(self):
        return _gc.mem_free()

    def mem_alloc(self):
        return _gc.mem_alloc()

    def threshold(self, *a):
        return _gc.threshold(*a)


SPY = Spy()
sys.modules["gc"] = SPY  # before any firmware module does `import gc`


def _heap():
    return _gc.mem_free() + _gc.mem_alloc()  # grows only when the heap does


async def main():
    import vmapp

    clock, app, loop, _ = await vmapp.connected_app()
    from bench.front import Front

    with open("/boards/bench-v1.json") as f:
        app.board = json.load(f)
    front = Front(app)
    app.front = front
    app.board = None
    poll = {
        "v": 1,
        "id": "klupa-park-2026",
        "opens": vmapp.START_WALL - 3600,
        "closes": vmapp.START_WALL + 40 * 86400,
        "question": {"bs": "Više klupa?", "sr": "Више клупа?"},
        "options": [{"id": o, "label": {"bs": o, "sr": o}} for o in ("da", "ne", "sjena", "kutak")],
    }
    front.on_poll(app, json.dumps(poll).encode())
    front.ui.redraw()
    await loop.pump()
    state = {"start": 0, "frames": 0}

    def on_frame(data):
        if SPY.path:
            SPY.path = False
            state["frames"] += 1
            if _heap() > state["start"]:
                SPY.grown += 1

    app.i2c.on_frame = on_frame
    emit = front.touch.emit

    def recognised(kind, pad):
        if kind == "press":
            state["start"] = _heap()
            SPY.path = True
        emit(kind, pad)

    front.touch.emit = recognised

    def sample():
        front.touch.sample()
        front.idle()
        clock.advance(50)

    async def presses(n, first):
        for k in range(first, first + n):
            clock.advance(61000)  # past confirmation and cooldown, under the hourly cap
            front.ui.tick()
            for _ in range(4):
                sample()
            pad = front.pads[k % 4]
            pad.v = 250  # touched: the reading falls
            for _ in range(10):  # held 0.5 s
                sample()
            pad.v = 400
            sample()  # released: recognised, confirmed, then idle
            if SPY.path or front.ui.mode != "confirm":
                raise AssertionError(f"press {k} was not confirmed by a frame")
            await loop.pump()
            await asyncio.sleep_ms(1)  # a collection asked for runs when JavaScript has control

    SPY.idle = SPY.in_path = SPY.grown = 0
    await presses(PRESSES, 0)
    result = {
        "presses": PRESSES,
        "frames": state["frames"],
        "idle": SPY.idle,
        "in_path": SPY.in_path,
        "grown": SPY.grown,
        "votes": app.seq,
    }
    vote = front.voting.emit_vote

    def collecting_vote(*args):
        import gc

        gc.collect()  # what the test must catch: a collection inside the press path
        return vote(*args)

    front.voting.emit_vote = collecting_vote
    SPY.in_path = 0
    await presses(10, PRESSES)
    result["planted_in_path"] = SPY.in_path
    print("@@press-gc " + json.dumps(result))
