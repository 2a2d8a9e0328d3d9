# The bench's commands (docs/protocol.md, Commands): run at most once per id across reboots and
# acknowledged on cmd/ack. App.on_command() imports this module for one command and drops it
# afterwards, so its bytecode does not stay in the heap.
import json

from bench.app import frag
from bench.protocol import whole
from bench.runtime import asyncio, const, job, ticks_ms

_KEEP_IDS = const(32)
_ID_KEEP = const(64)  # longer ids are kept as their SHA-256
_ID_MAX = const(256)
_DETAIL_MAX = const(200)  # an ack's detail, in characters
SAFE_OPS = ("ping", "reboot", "set", "ota")


def handle(app, payload):
    try:
        cmd = json.loads(payload)
    except ValueError:
        app.fault("bad_command", "not JSON")
        return
    if not isinstance(cmd, dict) or not isinstance(cmd.get("id"), str) or not cmd["id"]:
        app.fault("bad_command", "no id")
        return
    cid = cmd["id"]
    if len(cid) > _ID_MAX:  # its ack must fit a payload (docs/protocol.md: 2,048 bytes)
        app.fault("bad_command", "id longer than 256 characters")
        return
    key = id_key(cid)
    done = app.state.setdefault("ids", [])
    for entry in done:
        if entry[0] == key:  # re-delivered: acknowledge again, never run twice
            ack(app, cid, entry[1], entry[2])
            return
    if app.updating is not None and app.updating[0] == cid:
        return  # re-delivered while its download runs: the ack follows when it ends
    result = execute(app, cmd.get("op"), cmd.get("args", {}), cid)
    if result is not None:  # None: an update started, acknowledged when it ends
        finish(app, cid, result[0], result[1])


def finish(app, cid, ok, detail):
    # The command ran: keep its id (never run twice) and acknowledge it.
    detail = detail[:_DETAIL_MAX]
    done = app.state.setdefault("ids", [])
    done.append([id_key(cid), ok, detail])
    while len(done) > _KEEP_IDS:
        done.pop(0)
    app.save_state()
    ack(app, cid, ok, detail)


def id_key(cid):
    # What the bench keeps of a command id to know it again: the id itself, or for a long
    # one its SHA-256 (the ack always carries the whole id; state.json stays small).
    if len(cid) <= _ID_KEEP:
        return cid
    import binascii
    import hashlib

    return "#" + binascii.hexlify(hashlib.sha256(cid.encode()).digest()).decode()


def ack(app, cid, ok, detail):
    from bench import spool as sp

    return app.record(sp.KIND_ACK, frag({"id": cid, "ok": ok, "detail": detail}))


def execute(app, op, args, cid=""):
    if not isinstance(op, str):
        return False, "op missing"
    if app.safe and op not in SAFE_OPS:
        return False, "safe mode: only ping, reboot, set, ota"
    if args is None:
        args = {}
    if op == "ping":
        return True, ""
    if op == "reboot":
        if app.state.get("safe"):  # someone mended the cause: try normal mode at once
            app.state["trying"] = 1
            app.save_state()
        app.reboot_requested = ticks_ms()
        return True, "normal mode tried" if app.state.get("safe") else ""
    if op == "set":
        return apply_settings(app, args)
    if op == "port":
        if not isinstance(args, dict):
            return False, "args must be an object"
        n = whole(args.get("n"))  # 2.0 is port 2
        on = args.get("on")
        if n not in app.port_pins:
            return False, "no port n=%s" % (args.get("n"),)
        if not isinstance(on, bool):
            return False, "on must be true or false"
        app.switch_port(n, on)
        return True, ""
    if op == "selftest":
        return run_selftest(app)
    if op == "ota":
        return run_ota(app, args, cid)
    return False, "unknown op " + op[:32]


def apply_settings(app, args):
    th = app.power.th if app.power else {"saver_soc": 40, "critical_soc": 15}
    reason, clean = job("config", "check_settings", args, th)
    if reason:
        return False, reason
    settings = app.state.setdefault("settings", {})
    for k in clean:
        settings[k] = clean[k]
        app.cfg[k] = clean[k]
    if app.power:
        app.power.set_thresholds(clean.get("saver_soc"), clean.get("critical_soc"))
    return True, ""


def run_selftest(app):
    # Every sensor, port, pad and the display, one line back.
    summary, report = job("selftest", "for_app", app)
    return report["ok"], summary


def run_ota(app, args, cid):
    # Start fetching, verifying and staging the bundle as a task of its own, so sampling, touch,
    # the display and the link keep running through the download (docs/protocol.md, Update trust);
    # it acks when it ends, then the bench reboots into the new app. None once started.
    if not isinstance(args, dict):
        return False, "args must be an object"
    for k in ("url", "version", "sha256"):
        if not isinstance(args.get(k), str) or not args[k]:
            return False, k + " missing"
    if app.updating is not None:
        return False, "an update is already running"
    task = asyncio.create_task(update(app, cid, args))
    app.updating = (cid, task)
    tasks = getattr(app, "tasks", None)
    if tasks is not None:  # cancelled with the app's other tasks at a reboot
        tasks.append(task)
    return None


async def update(app, cid, args):
    # This module's globals stay with the coroutine after handle() unloads it.
    try:
        ok, detail = await job("ota", "command", app, args)
    except Exception as e:  # whatever the update met, the command gets its answer
        ok, detail = False, repr(e)
    app.updating = None
    finish(app, cid, ok, detail)
    if ok:
        app.reboot_requested = ticks_ms()
