# A small asyncio MQTT 3.1.1 client: what a bench needs and nothing more. QoS 0/1 publish with
# a bounded in-flight window, keepalive pings, dead-link detection within 1.5 keepalives, and
# no assert anywhere: a malformed packet raises MQTTError, the caller drops the connection
# and reconnects. What happens once per connection (CONNECT, CONNACK, SUBSCRIBE) is in
# bench.connect, which the link imports only for a connection attempt.
import struct

from bench import runtime
from bench.runtime import const

_CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_MAX_PACKET = const(8192)  # a Poll is at most 4096 bytes; anything longer is not ours


class MQTTError(Exception):
    pass


def encode_length(n):
    if n < 0 or n > 268435455:
        raise MQTTError("length out of range")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_length(data, i=1):
    # Remaining length at data[i:], returns (length, index after it).
    n = 0
    shift = 0
    for k in range(4):
        if i + k >= len(data):
            raise MQTTError("truncated length")
        b = data[i + k]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i + k + 1
        shift += 7
    raise MQTTError("length longer than 4 bytes")


def utf8(s):
    # An MQTT UTF-8 string: 2-byte length, then the bytes.
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def packet(first, body):
    return bytes([first]) + encode_length(len(body)) + body


def publish_packet(topic, payload, qos=0, retain=False, pid=0, dup=False):
    if isinstance(payload, str):
        payload = payload.encode()
    first = PUBLISH | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = utf8(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return packet(first, body)


def puback_packet(pid):
    return bytes([PUBACK, 2]) + struct.pack("!H", pid)


def parse(first, body):
    # One packet from the broker -> (type, fields). Raises MQTTError on anything malformed.
    kind = first & 0xF0
    n = len(body)
    if kind == _CONNACK:
        if first != _CONNACK or n != 2 or body[0] > 1:
            raise MQTTError("bad CONNACK")
        return kind, body[1]
    if kind == PUBLISH:
        qos = (first >> 1) & 3
        if qos == 3 or n < 2:
            raise MQTTError("bad PUBLISH")
        tlen = (body[0] << 8) | body[1]
        i = 2 + tlen
        if i > n or tlen == 0:
            raise MQTTError("bad PUBLISH topic")
        try:
            topic = bytes(body[2:i]).decode()
        except UnicodeError:
            raise MQTTError("topic not UTF-8")
        pid = 0
        if qos:
            if i + 2 > n:
                raise MQTTError("bad PUBLISH id")
            pid = (body[i] << 8) | body[i + 1]
            if pid == 0:
                raise MQTTError("PUBLISH id 0")
            i += 2
        return kind, (topic, bytes(body[i:]), qos, pid, bool(first & 1))
    if kind in (PUBACK, _SUBACK):
        if (kind == PUBACK and (first != PUBACK or n != 2)) or (kind == _SUBACK and n < 3):
            raise MQTTError("bad PUBACK or SUBACK")
        if kind == _SUBACK:
            for b in body[2:]:
                if b not in (0, 1, 2, 0x80):
                    raise MQTTError("bad SUBACK code")
        return kind, (body[0] << 8) | body[1]
    if kind == _PINGRESP:
        if first != _PINGRESP or n:
            raise MQTTError("bad PINGRESP")
        return kind, None
    raise MQTTError("unexpected packet type " + str(kind >> 4))


class Client:
    def __init__(self, keepalive=60, window=8):
        self.keepalive = keepalive
        self.window = window
        self.reader = None
        self.writer = None
        self.inflight = {}  # pid -> token given by the caller
        self.pid = 0
        self.last_rx = 0
        self.last_tx = 0
        self.error = None
        self.on_message = None  # fn(topic, payload)
        self.on_puback = None  # fn(token)
        self.busy = None  # fn() -> True while the receiver can take no more messages
        self.sent = 0  # bytes written, MQTT framing included

    def next_pid(self):
        self.pid = self.pid % 65535 + 1
        while self.pid in self.inflight:
            self.pid = self.pid % 65535 + 1
        return self.pid

    async def write(self, data):
        self.writer.write(data)
        await self.writer.drain()
        self.sent += len(data)
        self.last_tx = runtime.real_ms()

    async def read_packet(self):
        head = await self.reader.readexactly(1)
        n = 0
        shift = 0
        for k in range(5):
            if k == 4:
                raise MQTTError("length longer than 4 bytes")
            b = (await self.reader.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if n > _MAX_PACKET:
            raise MQTTError("packet too long")
        body = await self.reader.readexactly(n) if n else b""
        self.last_rx = runtime.real_ms()
        return parse(head[0], body)

    def can_publish(self):
        return self.error is None and len(self.inflight) < self.window

    async def publish(self, topic, payload, retain=False, qos=1, token=None, dup=False):
        pid = 0
        if qos:
            pid = self.next_pid()
            self.inflight[pid] = token
        await self.write(publish_packet(topic, payload, qos, retain, pid, dup))
        return pid

    async def ping(self):
        await self.write(bytes([_PINGREQ, 0]))

    async def disconnect(self):
        try:
            await self.write(bytes([_DISCONNECT, 0]))
        except Exception:
            pass
        self.close()

    def close(self):
        w = self.writer
        if w is not None:
            try:
                w.close()
                # MicroPython's Stream.close() does nothing (its wait_closed() closes the
                # socket): close the socket, and with it its TLS context, now.
                s = getattr(w, "s", None)
                if s is not None:
                    s.close()
            except Exception:
                pass
        self.writer = None

    async def reader_loop(self):
        # Runs for the connection's life; any failure is stored in self.error.
        try:
            while True:
                # A receiver that is behind is not handed more, and nothing is dropped: what
                # the broker sent waits in the socket (TCP and the broker's in-flight limit
                # hold the rest) until it has room.
                while self.busy is not None and self.busy():
                    await runtime.real_sleep_ms(20)
                kind, v = await self.read_packet()
                if kind == PUBLISH:
                    topic, payload, qos, pid, _ = v
                    if qos:
                        await self.write(puback_packet(pid))
                    if self.on_message is not None:
                        self.on_message(topic, payload)
                elif kind == PUBACK:
                    if v in self.inflight:
                        token = self.inflight.pop(v)
                        if self.on_puback is not None:
                            self.on_puback(token)
        except Exception as e:  # malformed packet, EOF, reset: the link is dead
            if self.error is None:
                self.error = e
            self.close()

    async def keepalive_loop(self):
        # In real time (runtime.real_ms): the broker holds the keepalive sent in CONNECT in
        # real seconds, so a virtual clock running fast must neither ping nor give up sooner.
        ka = self.keepalive * 1000
        self.last_rx = runtime.real_ms()
        try:
            while self.error is None:
                await runtime.real_sleep_ms(ka // 4 if ka >= 4000 else 1000)
                now = runtime.real_ms()
                if runtime.ticks_diff(now, self.last_rx) > ka * 3 // 2:
                    raise MQTTError("no answer within 1.5 keepalives")
                if (
                    runtime.ticks_diff(now, self.last_tx) >= ka // 2
                    or runtime.ticks_diff(now, self.last_rx) >= ka // 2
                ):
                    await self.ping()
        except Exception as e:
            if self.error is None:
                self.error = e
            self.close()
