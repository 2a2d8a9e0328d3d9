# The last unhandled exception, kept in flash (/fault.json) so that the next boot reports it
# as a `fault` event (code `crash`, detail <= 120 chars: docs/protocol.md): a crash far away is seen
# without a USB visit. Written by main.py when the app crashes (at import too) and by the app
# when a critical task dies; read once by bench.startup. Imported for one step: not resident.
import io
import sys

from bench import runtime, store

_TRACE_MAX = 1024


def summary(text):
    # "<exception line> @ <innermost frames, file:line function>" in at most 120 chars.
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if not lines:
        return "?"
    frames = []
    for ln in lines:
        if ln.startswith('File "'):
            name = ln[6 : ln.find('"', 6)]
            name = name[name.rfind("/") + 1 :]
            rest = ln[ln.find('"', 6) + 1 :]
            line = rest[rest.find("line ") + 5 :].split(",")[0] if "line " in rest else ""
            fn = rest[rest.find(" in ") + 4 :] if " in " in rest else ""
            frames.append(name + ":" + line + " " + fn)
    frames.reverse()  # innermost first
    return (lines[-1] + " @ " + " < ".join(frames[:3]))[:120]


def keep(root, exc):
    buf = io.StringIO()
    # The traceback as MicroPython's sys.print_exception() writes it (CPython on the host:
    # the virtual board; the ESP32 port has no traceback module).
    if runtime.MICROPYTHON:
        sys.print_exception(exc, buf)
    else:
        __import__("traceback").print_exception(type(exc), exc, exc.__traceback__, file=buf)
    text = buf.getvalue()
    store.save(root + "/fault.json", {"detail": summary(text), "trace": text[-_TRACE_MAX:]})


def died(root, exc):
    # A critical task died (App.watched): said on the console, kept for the next boot.
    print("task died:", repr(exc))
    keep(root, exc)


def report(app):
    # At boot, after the `boot` event: the kept crash as a `fault` event, once.
    path = app.root + "/fault.json"
    f = store.load(path, None)
    if f is None:
        return
    detail = str(f.get("detail", "?"))[:120]
    app.record_event("fault", {"code": "crash", "detail": detail})
    app.state["last_fault"] = detail
    app.save_state()
    try:
        import os

        os.remove(path)
    except OSError:
        pass
