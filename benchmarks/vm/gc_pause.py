# mypy: ignore-errors
# (MicroPython code, run by benchmarks/gc_pause.py in MicroPython's unix port through
# unix_main.py, with a fixed GC heap: `micropython -X heapsize=4M`.)
# The whole app built as App.start() builds it, with the front and a poll (as pressrun.py),
# then: its live set (gc.mem_alloc() after a collection, less what was live before the app was
# built: the launcher, this harness and, in "rom" mode, the image standing in for flash) and the heap's size, and the time of
# gc.collect() on that heap, with only the live set in it and after one press's garbage
# (a press and its confirmation frame, the moment Front.idle() collects). Prints one line
# "@@gc-pause {json}".
import gc
import json
import time

from pressrun import POLL, app_with_front

RUNS = 50


def _collect_us():
    t = time.ticks_us()
    gc.collect()
    return time.ticks_diff(time.ticks_us(), t)


def _median(xs):
    s = sorted(xs)
    return s[len(s) // 2]


async def main():
    gc.collect()
    base = gc.mem_alloc()  # the launcher, the harness (and in "rom" mode the image) before the app
    clock, app, loop, _, front = await app_with_front(POLL)
    gc.collect()
    live = gc.mem_alloc() - base
    heap = gc.mem_free() + gc.mem_alloc()
    idle = [_collect_us() for _ in range(RUNS)]
    after_press = []
    garbage = []
    for k in range(RUNS):
        clock.advance(61000)
        front.ui.tick()
        for _ in range(4):
            front.touch.sample()
            clock.advance(50)
        pad = front.pads[k % 4]
        pad.v = 250
        for _ in range(10):
            front.touch.sample()
            clock.advance(50)
        pad.v = 400
        before = gc.mem_alloc()
        front.touch.sample()  # the press, its vote and its confirmation frame
        garbage.append(gc.mem_alloc() - before)
        after_press.append(_collect_us())
        await loop.pump()
        gc.collect()
    print(
        "@@gc-pause "
        + json.dumps(
            {
                "live": live,
                "heap": heap,
                "idle_median_us": _median(idle),
                "idle_worst_us": max(idle),
                "press_median_us": _median(after_press),
                "press_worst_us": max(after_press),
                "press_alloc_median": _median(garbage),
                "votes": app.seq,
            }
        )
    )
