# mypy: ignore-errors
# (MicroPython code, run inside the VM by benchmarks/vm_ui.py: ui_presses.py's measure()
# imports this after the app's modules and subtracts what the import costs.)
# 1,000 vote presses through the touch pads: TouchPads.sample() recognises each press from
# pad readings, Front.on_touch -> Ui -> Voting.press -> App.record_vote (spooled) -> the
# confirmation screen -> SSD1306.show() -> I2C writeto.

import json

import vmapp
import vmkit

PRESSES = 1000
POLL = {
    "v": 1,
    "id": "klupa-park-2026",
    "opens": vmapp.START_WALL - 3600,
    "closes": vmapp.START_WALL + 40 * 86400,
    "question": {
        "bs": "Da li želite više klupa u parku kod škole? Šta je važnije: sjena ili đački kutak?",
        "sr": "Да ли желите више клупа у парку код школе?",
    },
    "options": [
        {"id": "da", "label": {"bs": "Da", "sr": "Да"}},
        {"id": "ne", "label": {"bs": "Ne", "sr": "Не"}},
        {"id": "sjena", "label": {"bs": "Sjena", "sr": "Сјена"}},
        {"id": "kutak", "label": {"bs": "Đački kutak", "sr": "Ђачки кутак"}},
    ],
}


async def app_with_front(poll):
    # vmapp.connected_app() with the front as bench.startup.start() builds it (from the parsed
    # profile, dropped afterwards), showing `poll` and settled: (clock, app, loopback, live
    # heap once the app was built, front).
    clock, app, loop, built = await vmapp.connected_app()
    from bench.front import Front

    with open(vmkit.BOARD_FILE) as f:
        app.board = json.load(f)
    front = Front(app)
    app.front = front
    app.board = None
    front.on_poll(app, json.dumps(poll).encode())
    front.ui.redraw()
    await loop.pump()
    return clock, app, loop, built, front


def _median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n & 1 else (s[n // 2 - 1] + s[n // 2]) // 2


async def run(fig, peaks):
    clock, app, loop, built, front = await app_with_front(POLL)
    ready = await vmkit.settle()
    fine = vmkit.fine_us
    i2c = app.i2c
    t = {"t0": 0, "f0": 0, "lat": None, "flat": None, "frame": None}

    def on_frame(data):
        if t["lat"] is None and t["t0"]:
            t["lat"] = vmkit.now_us() - t["t0"]
            if fine is not None:
                t["flat"] = fine() - t["f0"]
            t["frame"] = data

    i2c.on_frame = on_frame
    emit = front.touch.emit

    def recognised(kind, pad):
        if kind == "press":
            t["t0"] = vmkit.now_us()
            if fine is not None:
                t["f0"] = fine()
            t["lat"] = None
        emit(kind, pad)

    front.touch.emit = recognised
    pads = front.pads
    lat = peaks.a
    flat = peaks.b
    vmkit.check(len(lat) == PRESSES, "room for the latencies")
    peaks.reset(ready)
    for k in range(PRESSES):
        peaks.begin()
        clock.advance(61000)  # past confirmation + cooldown, under the hourly cap
        front.ui.tick()  # back to the poll screen
        for _ in range(4):
            front.touch.sample()
            clock.advance(50)
        pad = pads[k % 4]
        pad.v = 250  # touched: the reading falls (ESP32)
        for _ in range(10):  # held 0.5 s
            front.touch.sample()
            clock.advance(50)
        pad.v = 400
        t["t0"] = 0
        front.touch.sample()  # released: the press is recognised here
        vmkit.check(t["lat"] is not None, f"press {k} sent a frame")
        vmkit.check(front.ui.mode == "confirm", f"press {k} confirmed")
        lat[k] = t["lat"]
        if fine is not None:
            flat[k] = t["flat"]
        await loop.pump()
        peaks.end()
        peaks.note(await vmkit.settle())
    # Baseline, same run: the same frame put up with plain framebuf and shown on the
    # same display and I2C stand-in: fill, blit of the captured frame, show().
    import framebuf

    d = front.display
    img = bytearray(t["frame"][1:])
    src = framebuf.FrameBuffer(img, d.width, d.height, framebuf.MONO_VLSB)
    base = []
    fbase = []
    for i in range(PRESSES):
        t["t0"] = vmkit.now_us()
        if fine is not None:
            t["f0"] = fine()
        t["lat"] = None
        d.fill(0)
        d.fb.blit(src, 0, 0)
        d.show()
        base.append(t["lat"])
        if fine is not None:
            fbase.append(t["flat"])
        if not i % 50:
            await vmkit.settle()
    vmkit.check(bytes(d.buffer) == bytes(img), "the baseline shows the same frame")
    result = dict(fig)
    result.update(
        {
            "built": built,
            "ready": ready,
            "high": peaks.high,
            "burst": peaks.burst,
            "presses": PRESSES,
            "votes": app.seq,
            "frames": i2c.frames,
            "median_us": _median(lat),
            "worst_us": max(lat),
            "base_median_us": _median(base),
            "base_worst_us": max(base),
            "fine": fine is not None,
            "fine_median_us": _median(flat) if fine is not None else None,
            "fine_worst_us": max(flat) if fine is not None else None,
            "fine_base_median_us": _median(fbase) if fbase else None,
            "fine_base_worst_us": max(fbase) if fbase else None,
        }
    )
    return result
