# mypy: ignore-errors
# (MicroPython code, run inside the VM by benchmarks/vm_core.py: core_day.py's measure()
# imports this after the app's core modules and subtracts what the import costs.)
# 24 simulated hours at 1-s samples: App.sample -> App.close_window -> spool -> encode ->
# publish to a loopback byte sink, PUBACKs and Receipts fed back.
import vmapp
import vmkit

HOURS = 24


async def run(fig, peaks):
    clock, app, loop, built = await vmapp.connected_app()
    from bench import runtime

    peaks.reset(built)
    hourly = peaks.a
    vmkit.check(len(hourly) == HOURS, "room for the hourly figures")
    windows = 0
    window_ms = 0
    t0 = vmkit.now_us()
    for hour in range(HOURS):
        for _ in range(60):
            # one 60-s window (period_s() grows in saver/critical: follow it)
            peaks.begin()
            period = app.period_s()
            while window_ms < period * 1000 - 500:
                clock.advance(1000)
                app.sample(1000)
                window_ms += 1000
            app.close_window(period)
            app.window.reset(runtime.ticks_ms())
            window_ms = 0
            windows += 1
            await loop.pump()
            peaks.end()
            live = peaks.note(await vmkit.settle())
        hourly[hour] = live
    elapsed_us = vmkit.now_us() - t0
    link = app.link
    vmkit.check(link.published == app.seq, "every record published")
    vmkit.check(app.spool.pending() == 0, "every record receipted")
    result = dict(fig)
    result.update(
        {
            "built": built,
            "high": peaks.high,
            "high_at": peaks.high_at,
            "burst": peaks.burst,
            "hour1": hourly[0],
            "hour24": hourly[-1],
            "hourly": list(hourly),
            "windows": windows,
            "records": app.seq,
            "published": link.published,
            "wire_bytes": loop.sink.bytes,
            "wire_packets": loop.sink.packets,
            "fed_back_bytes": loop.received,
            "spool_used": app.spool.used(),
            "power": app.power.state,
            "soc_cp": app.power.soc_cp(),
            "elapsed_us": elapsed_us,
        }
    )
    return result
