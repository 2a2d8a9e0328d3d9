# A plain HTTP/1.0 GET for bench.ota: the gateway serves bundles on the LAN. The body is
# streamed a chunk at a time, never held whole. Imported by bench.ota only for a download.
# (It imports nothing of bench.ota: runtime.job drops that module while its coroutine runs.)
from bench import runtime
from bench.trust import OtaError

NET_MS = 15000  # a read that waits longer than this fails the download


class _Response:
    # An HTTP response's body, read a chunk at a time; each read is an await, so the app's
    # other tasks (touch, display, the link, the watchdog's feeder) run between chunks.
    def __init__(self, reader, writer, status):
        self.reader = reader
        self.writer = writer
        self.status = status

    async def read(self, n):
        return await runtime.net_wait_ms(self.reader.read(n), NET_MS)

    async def readinto(self, buf):
        # Into the caller's buffer, with no timer of its own (the caller bounds the whole
        # body): a timer per chunk would cost the heap a task each time.
        r = self.reader
        if hasattr(r, "readinto"):  # MicroPython's streams; CPython's have only read()
            return await r.readinto(buf)
        b = await r.read(len(buf))
        buf[: len(b)] = b
        return len(b)

    def close(self):
        try:
            self.writer.close()
        except Exception:  # already gone: nothing to release
            pass


async def http_get(url, opener=None):
    # A plain HTTP/1.0 GET (the gateway serves bundles on the LAN) over the asyncio streams of
    # opener(host, port) (runtime.open_connection by default). Returns a response with
    # status, read(n) and readinto(buf) (coroutines) and close(); the body is streamed, never
    # held whole.
    if not url.startswith("http://"):
        raise OtaError("only http:// URLs")
    rest = url[7:]
    slash = rest.find("/")
    hostport, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    host, port = hostport, 80
    if ":" in hostport:
        host, p = hostport.rsplit(":", 1)
        port = int(p)
    reader, writer = await runtime.net_wait_ms(
        (opener or runtime.open_connection)(host, port), NET_MS
    )
    try:
        writer.write(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, hostport)).encode())
        await runtime.net_wait_ms(writer.drain(), NET_MS)
        line = await runtime.net_wait_ms(reader.readline(), NET_MS)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise OtaError("bad HTTP status line")
        status = int(parts[1])
        while True:
            h = await runtime.net_wait_ms(reader.readline(), NET_MS)
            if not h or h in (b"\r\n", b"\n"):
                break
    except Exception:
        writer.close()
        raise
    return _Response(reader, writer, status)
