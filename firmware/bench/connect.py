# How the link gets a session, once per connection attempt: Wi-Fi, the clock (NTP), TLS,
# the broker, the subscriptions and the birth Status. bench.link imports this module for an
# attempt (and for the 6-hourly clock check) and drops it afterwards; the session's loop,
# which runs for as long as the connection lasts, stays in bench.link.
from bench import protocol, runtime
from bench.mqtt import Client
from bench.runtime import asyncio, ticks_ms


async def start(link):
    app = link.app
    await wifi(link)
    if link.ntp_due():
        ntp(link)
    cfg = link.cfg
    mq = cfg["mqtt"]
    bench = cfg["bench"]
    will = (link.t_status, protocol.status_json(bench, "offline"), True, 1)
    c = Client(bench, cfg["keepalive"], mq.get("user", bench), mq.get("password"), will)
    link.client = c
    c.on_message = link.on_message
    c.on_puback = link.on_puback
    opener = getattr(app.hw, "open_connection", None) or runtime.open_connection
    await c.connect(opener, mq["host"], mq["port"], tls(link))
    link.sessions += 1
    link.connected = True
    link.birth_acked = False
    # Re-send, on this clean session, everything the broker had not acknowledged.
    for key in list(link.sent):
        if not link.sent[key][1]:
            del link.sent[key]
    link.cursor = (0, 0)
    tasks = [asyncio.create_task(c.reader_loop()), asyncio.create_task(c.keepalive_loop())]
    try:
        await c.subscribe([link.t_cmd, link.t_receipt, link.t_poll])
        birth = protocol.status_json(bench, "online", app.boot_no, app.fw, _mpy(), app.now())
        await c.publish(link.t_status, birth, retain=True, token="birth")
    except BaseException:
        link.end_session(c, tasks)
        raise
    return c, tasks


async def wifi(link):
    sta = link.sta
    if sta.isconnected():
        return
    sta.active(True)
    w = link.cfg["wifi"]
    sta.connect(w["ssid"], w.get("password", ""))
    for _ in range(30):
        if sta.isconnected():
            return
        await runtime.sleep_ms(500)
    raise OSError("Wi-Fi did not connect to " + w["ssid"])


def ntp(link):
    nt = link.app.hw.ntptime
    nt.host = link.cfg.get("ntp") or link.cfg["mqtt"]["host"]
    old = runtime.wall()
    try:
        nt.settime()
    except (OSError, OverflowError, IndexError) as e:
        print("ntp:", e)
        link.ntp_failed = ticks_ms()
        return
    link.ntp_failed = None
    link.last_ntp = ticks_ms()
    link.app.set_clock(runtime.wall(), old)


def tls(link):
    mq = link.cfg["mqtt"]
    if not mq.get("tls"):
        return None
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if mq.get("ca"):
        path = mq["ca"]
        if not path.startswith("/"):
            path = "/" + path
        ctx.load_verify_locations(cafile=link.app.root + path)
    return ctx


def _mpy():
    import sys

    v = sys.implementation.version
    return "%d.%d.%d" % (v[0], v[1], v[2])
