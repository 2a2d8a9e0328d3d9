# The link supervisor: Wi-Fi, clock, broker, then the MQTT session that publishes fresh
# records at once and drains the spool's backlog oldest-first; reconnects with exponential
# backoff (1 s .. 5 min) and jitter. A record leaves the spool only when a Receipt covers it;
# one the broker acknowledged but no Receipt covered within resend_s is sent again.
import json
import random

from bench import protocol, runtime
from bench import spool as sp
from bench.runtime import asyncio, const, job, ticks_diff, ticks_ms

_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(300000)
_AWAIT_RECEIPT_MAX = const(64)  # records sent but not yet receipted before the backlog pauses
_NTP_RETRY_MS = const(30000)
_INBOX_MAX = const(8)  # messages from the broker waiting for the session loop


class Link:
    def __init__(self, app):
        self.app = app
        cfg = app.cfg
        self.cfg = cfg
        net = app.hw.network
        self.sta = net.WLAN(net.STA_IF)
        m = cfg["municipality"]
        # The bench's topics are this prefix plus a leaf ("status", "cmd", "receipt", ...),
        # joined when used rather than kept as a string each.
        self.base = protocol.topic(m, cfg["bench"], "")
        self.t_poll = protocol.ROOT + m + "/poll"
        self.client = None
        self.connected = False
        self.birth_acked = False
        self.queue = []  # fresh records, published before the backlog
        self.sent = {}  # (boot, seq) -> [ticks when sent, broker acked]
        self.cursor = (0, 0)
        self.last_ntp = None
        self.ntp_failed = None  # ticks of the last failed query
        self.inbox = []
        self.wake = asyncio.Event()
        self.sessions = 0
        self.published = 0  # records published (re-sends included)
        self.resent = 0
        self.dozing = False  # `critical`: disconnected on purpose until wake_up()
        self.leaving = False  # sleep() is announcing the sleep and disconnecting
        self.resume = asyncio.Event()
        self.backing_off = False  # the last attempt failed; waiting before the next one

    # -- from the app
    def fresh(self, rec):
        if len(self.queue) < 16:
            self.queue.append(rec)
        self.wake.set()

    def idle(self):
        return not self.queue and (self.client is None or not self.client.inflight)

    # -- the supervisor
    async def run(self):
        backoff = _BACKOFF_MIN_MS
        while True:
            self.app.checkin("link")
            started = ticks_ms()
            try:
                if self.dozing or self.leaving:
                    await self.parked()
                    continue
                c, tasks = await job("connect", "start", self)  # Wi-Fi, NTP, broker, birth
                await self.session(c, tasks)
            except Exception as e:  # the link's edge: log, back off, try again
                if not (self.dozing or self.leaving):
                    print("link:", repr(e))
            self.connected = False
            if self.client is not None:
                self.client.close()
            if self.dozing or self.leaving:
                backoff = _BACKOFF_MIN_MS
                continue
            if ticks_diff(ticks_ms(), started) > 60000:
                backoff = _BACKOFF_MIN_MS
            delay = backoff + random.getrandbits(16) % (backoff // 2 + 1)
            backoff = min(backoff * 2, _BACKOFF_MAX_MS)
            self.backing_off = True
            try:
                while delay > 0:
                    self.app.checkin("link")
                    step = 1000 if delay > 1000 else delay
                    await runtime.sleep_ms(step)
                    delay -= step
            finally:
                self.backing_off = False

    async def session(self, c, tasks):
        # The connected session: inbox, re-sends, the clock check, fresh records and backlog.
        app = self.app
        try:
            while c.error is None and not self.dozing:
                app.checkin("link")
                self.handle_inbox()
                self.check_resend()
                if self.ntp_due():
                    job("connect", "ntp", self)
                if app.clock_set:
                    await self.send_some(c)
                if not self.wake.is_set():
                    try:
                        await runtime.wait_for_ms(self.wake.wait(), 1000)
                    except asyncio.TimeoutError:
                        pass
                self.wake.clear()
            if self.dozing or self.leaving:
                return
            raise c.error
        finally:
            self.end_session(c, tasks)

    def end_session(self, c, tasks):
        for t in tasks:
            t.cancel()
        c.close()
        self.connected = False

    def ntp_due(self):
        # Every ntp_every_s; after a failed query, not again within 30 s.
        now = ticks_ms()
        if self.ntp_failed is not None and ticks_diff(now, self.ntp_failed) < _NTP_RETRY_MS:
            return False
        every = self.cfg["ntp_every_s"] * 1000
        return self.last_ntp is None or ticks_diff(now, self.last_ntp) > every

    async def send_some(self, c):
        # Fresh records first, then up to a window's worth of backlog.
        while self.queue and c.can_publish():
            rec = self.queue.pop(0)
            await self.publish(c, rec)
        if self.queue or not c.can_publish() or len(self.sent) >= _AWAIT_RECEIPT_MAX:
            return
        batch, cursor = self.app.spool.read_batch(self.cursor, 8)
        for rec in batch:
            key = (rec.boot, rec.seq)
            if key in self.sent:
                continue
            if not c.can_publish() or len(self.sent) >= _AWAIT_RECEIPT_MAX:
                return  # the cursor stays: these are read again next time
            await self.publish(c, rec)
        self.cursor = cursor
        if batch:
            self.wake.set()

    async def publish(self, c, rec):
        key = (rec.boot, rec.seq)
        if key in self.sent or self.app.spool.is_acked(rec.boot, rec.seq):
            return
        ts = self.app.ts_of(rec)
        if ts is None:
            return  # its boot's clock is unknown: it cannot be stamped
        b = self.cfg["bench"]
        if rec.kind == sp.KIND_TELEMETRY:
            payload = protocol.telemetry_json(b, rec.boot, rec.seq, ts, rec.body)
        else:
            payload = protocol.fragment_json(b, rec.boot, rec.seq, ts, rec.body)
        self.sent[key] = [ticks_ms(), False]
        self.published += 1
        # the leaf by record kind: KIND_TELEMETRY 1, KIND_EVENT 2, KIND_VOTE 3, KIND_ACK 4
        leaf = ("telemetry", "event", "vote", "cmd/ack")[rec.kind - 1]
        await c.publish(self.base + leaf, payload, token=key)

    def check_resend(self):
        limit = self.cfg["resend_s"] * 1000
        now = ticks_ms()
        expired = [
            k for k in self.sent if self.sent[k][1] and ticks_diff(now, self.sent[k][0]) > limit
        ]
        if expired:
            for k in expired:
                del self.sent[k]
            self.resent += len(expired)
            self.cursor = (0, 0)

    # -- from the broker
    def on_puback(self, token):
        if token == "birth":
            self.birth_acked = True
            return
        entry = self.sent.get(token)
        if entry is not None:
            entry[0] = ticks_ms()
            entry[1] = True
        self.wake.set()

    def on_message(self, topic, payload):
        # Called from the reader; the work happens in the session loop. The reader waits
        # while inbox_full(), so a burst of commands is taken in full, a few at a time.
        self.inbox.append((topic, payload))
        self.wake.set()

    def inbox_full(self):
        return len(self.inbox) >= _INBOX_MAX

    def handle_inbox(self):
        while self.inbox:
            topic, payload = self.inbox.pop(0)
            try:
                leaf = topic[len(self.base) :] if topic.startswith(self.base) else None
                if leaf == "receipt":
                    self.on_receipt(payload)
                elif leaf == "cmd":
                    self.app.on_command(payload)
                elif topic == self.t_poll and self.app.poll_hook is not None:
                    self.app.poll_hook(self.app, payload)
            except Exception as e:  # bad input never stops the link
                self.app.fault("bad_message", topic[-12:] + ": " + repr(e)[:80])

    def on_receipt(self, payload):
        try:
            boots = protocol.parse_receipt(json.loads(payload))
        except ValueError:
            boots = None
        if boots is None:
            return
        spool = self.app.spool
        spool.ack(boots)
        # By the receipt's own ranges as well as the spool's: once every record of a boot has
        # left the flash, the spool forgets that boot's ranges.
        for key in list(self.sent):
            r = boots.get(key[0])
            if (r is not None and sp.covered(r, key[1])) or spool.is_acked(key[0], key[1]):
                del self.sent[key]
        self.wake.set()

    # -- the critical state's sleep (bench.doze leaves the broker; these bring the link back)
    def wake_up(self):
        self.dozing = False
        self.resume.set()

    async def parked(self):
        while self.dozing or self.leaving:
            self.app.checkin("link")
            try:
                await runtime.wait_for_ms(self.resume.wait(), 1000)
            except asyncio.TimeoutError:
                pass
