# How the link gets a session, once per connection attempt: Wi-Fi, the clock (NTP), TLS,
# the broker, the subscriptions and the birth Status. bench.link imports this module for an
# attempt (and for the 6-hourly clock check), App.main for the clean stop before a reboot
# (shutdown), and each drops it afterwards; the session's loop, which runs for as long as the
# connection lasts, stays in bench.link.
import struct

from bench import protocol, runtime
from bench.mqtt import Client, MQTTError, packet, utf8
from bench.runtime import asyncio, const, ticks_ms

_CONNECT = const(0x10)  # MQTT 3.1.1 packet types
_CONNACK = const(0x20)
_SUBSCRIBE = const(0x82)


async def start(link):
    app = link.app
    await wifi(link)
    if link.ntp_due():
        ntp(link)
    cfg = link.cfg
    mq = cfg["mqtt"]
    bench = cfg["bench"]
    will = (link.base + "status", protocol.status_json(bench, "offline"), True, 1)
    c = Client(cfg["keepalive"])
    link.client = c
    c.on_message = link.on_message
    c.on_puback = link.on_puback
    c.busy = link.inbox_full
    opener = getattr(app.hw, "open_connection", None) or runtime.open_connection
    hello = connect_packet(bench, c.keepalive, mq.get("user", bench), mq.get("password"), will)
    await handshake(c, opener, mq["host"], mq["port"], tls(link), hello)
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
        topics = [link.base + "cmd", link.base + "receipt", link.t_poll]
        await c.write(subscribe_packet(c.next_pid(), topics))
        birth = protocol.status_json(bench, "online", app.boot_no, app.fw, _mpy(), app.now())
        await c.publish(link.base + "status", birth, retain=True, token="birth")
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
    try:
        sta.connect(w["ssid"], w.get("password", ""))
    except OSError as e:  # the ESP32 refuses while its driver still reconnects on its own
        print("wifi:", e)
    for _ in range(30):
        if sta.isconnected():
            return
        link.app.checkin("link")  # waiting for Wi-Fi is the link at work, not hung
        await runtime.sleep_ms(500)
    raise OSError("Wi-Fi did not connect to " + w["ssid"])


def ntp(link):
    nt = link.app.hw.ntptime
    nt.host = link.cfg.get("ntp") or link.cfg["mqtt"]["host"]
    old = runtime.wall()
    try:
        nt.settime()
    except (OSError, OverflowError, IndexError, ValueError) as e:  # ValueError: a short reply
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
    # MicroPython's SSLContext starts at CERT_NONE (CPython's client context at REQUIRED):
    # without this the CA above is loaded and never checked, and anyone can be the broker.
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _mpy():
    import sys

    v = sys.implementation.version
    return "%d.%d.%d" % (v[0], v[1], v[2])


def connect_packet(client_id, keepalive, user=None, password=None, will=None, clean=True):
    flags = 0x02 if clean else 0
    payload = utf8(client_id)
    if will is not None:
        wtopic, wmsg, wretain, wqos = will
        flags |= 0x04 | (wqos << 3) | (0x20 if wretain else 0)
        payload += utf8(wtopic) + utf8(wmsg)
    if user is not None:
        flags |= 0x80
        payload += utf8(user)
        if password is not None:
            flags |= 0x40
            payload += utf8(password)
    return packet(
        _CONNECT, utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    )


def subscribe_packet(pid, topics, qos=1):
    body = struct.pack("!H", pid)
    for t in topics:
        body += utf8(t) + bytes([qos])
    return packet(_SUBSCRIBE, body)


async def handshake(c, open_connection, host, port, ssl, hello, timeout_ms=15000):
    # Opens the connection, sends CONNECT (hello) and waits for the broker's CONNACK.
    c.error = None
    c.inflight = {}
    c.reader, c.writer = await runtime.net_wait_ms(open_connection(host, port, ssl), timeout_ms)
    await c.write(hello)
    kind, code = await runtime.net_wait_ms(c.read_packet(), timeout_ms)
    if kind != _CONNACK:
        raise MQTTError("expected CONNACK")
    if code:
        raise MQTTError("connection refused, code " + str(code))


async def shutdown(link):
    # Clean stop (App.main, before a reboot): the retained offline Status, then DISCONNECT
    # (no will).
    c = link.client
    if c is None or not link.connected:
        return
    try:
        st = protocol.status_json(link.cfg["bench"], "offline")
        await c.publish(link.base + "status", st, True)
        await runtime.sleep_ms(200)
        await c.disconnect()
    except Exception:
        pass
