# Runs under pytest and inside the MicroPython VM: unittest and firmware modules only.
# The link's bookkeeping of records sent and awaiting a Receipt (docs/protocol.md, "Delivery
# guarantees"): a Receipt settles what it covers, even when it empties the spool; what no
# Receipt covers within resend_s is published again, and nothing else is. And what comes
# from the broker: a burst of commands larger than the link's inbox is taken in full.
import json
import unittest

try:
    import asyncio
except ImportError:  # older MicroPython
    import uasyncio as asyncio

from bench import spool as sp
from scratch import fresh

BOOT = 3
RESEND_S = 900


def rec(seq):
    return sp.Record(sp.KIND_EVENT, BOOT, seq, 1795712460 + seq, 0, b'"type":"x","data":{}')


def receipt(lo, hi):
    return json.dumps({"v": 1, "boots": {str(BOOT): [[lo, hi]]}}).encode()


class Clock:
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms


class Client:
    # The MQTT client as the link uses it: room to publish, and what was published.
    def __init__(self):
        self.published = []

    def can_publish(self):
        return True

    async def publish(self, topic, payload, token=None):
        self.published.append(token)


class App:
    def __init__(self, root):
        self.cfg = {
            "bench": "maglaj-01",
            "municipality": "maglaj",
            "resend_s": RESEND_S,
        }
        self.spool = sp.Spool(root)
        self.faults = []
        self.commands = []

    class hw:
        class network:
            STA_IF = 0

            class WLAN:
                def __init__(self, kind):
                    pass

    def ts_of(self, r):
        return r.stamp

    def fault(self, code, detail):
        self.faults.append(code)

    def on_command(self, payload):
        self.commands.append(payload)


class Stream:
    # The broker's side of the socket: what it sent, read in pieces; what the bench wrote.
    def __init__(self, data):
        self.data = data
        self.at = 0
        self.written = b""

    async def readexactly(self, n):
        if self.at + n > len(self.data):
            raise EOFError("closed")
        self.at += n
        return self.data[self.at - n : self.at]

    def write(self, data):
        self.written += data

    async def drain(self):
        pass

    def close(self):
        pass


def link_module():
    # bench.link as imported now, and the clock set on the runtime it uses: other tests in
    # this process (the virtual bench's reboots) may have imported the firmware afresh, so
    # the runtime imported at the top of this file may not be the link's.
    from bench import link

    return link


class LinkReceiptTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.clock = Clock()
        self.link_mod = link_module()
        self.link_mod.runtime.CLOCK = self.clock

    def tearDown(self):
        self.link_mod.runtime.CLOCK = None

    async def sent_and_acked(self, name, n):
        # n records spooled, published from the backlog and PUBACKed by the broker.
        app = App(fresh(name))
        for seq in range(1, n + 1):
            app.spool.append(rec(seq))
        link = self.link_mod.Link(app)
        client = Client()
        await link.send_some(client)
        for token in client.published:
            link.on_puback(token)
        self.assertEqual(sorted(link.sent), [(BOOT, s) for s in range(1, n + 1)])
        return app, link, client

    async def test_a_receipt_that_empties_the_spool_settles_every_record_it_covers(self):
        app, link, client = await self.sent_and_acked("receipt-all", 3)
        link.on_message(link.base + "receipt", receipt(1, 3))
        link.handle_inbox()
        self.assertEqual(app.spool.pending(), 0)
        self.assertEqual(link.sent, {})  # nothing left waiting for a Receipt
        self.clock.ms += (RESEND_S + 1) * 1000
        link.check_resend()
        self.assertEqual(link.resent, 0)
        await link.send_some(client)
        self.assertEqual(len(client.published), 3)  # nothing published twice
        self.assertEqual(app.faults, [])

    async def test_what_no_receipt_covers_is_published_again_after_resend_s(self):
        app, link, client = await self.sent_and_acked("receipt-part", 3)
        link.on_message(link.base + "receipt", receipt(1, 2))
        link.handle_inbox()
        self.assertEqual(sorted(link.sent), [(BOOT, 3)])
        self.clock.ms += RESEND_S * 1000 - 1000
        link.check_resend()
        self.assertEqual(link.resent, 0)  # not yet
        self.clock.ms += 2000
        link.check_resend()
        self.assertEqual(link.resent, 1)
        await link.send_some(client)
        self.assertEqual(client.published[3:], [(BOOT, 3)])  # seq 3 again, only it


class LinkInboxTest(unittest.IsolatedAsyncioTestCase):
    async def test_a_burst_of_commands_larger_than_the_inbox_is_taken_in_full(self):
        # 20 commands at once, QoS 1: the reader acknowledges and hands them on while the
        # inbox has room, waits while it is full, and the session loop works through them.
        from bench import mqtt
        from bench.link import Link

        app = App(fresh("inbox-burst"))
        link = Link(app)
        payloads = [json.dumps({"id": f"c-{i}", "op": "ping"}).encode() for i in range(20)]
        stream = Stream(
            b"".join(
                mqtt.publish_packet(link.base + "cmd", p, qos=1, pid=i + 1)
                for i, p in enumerate(payloads)
            )
        )
        c = mqtt.Client()
        c.reader = stream
        c.writer = stream
        c.on_message = link.on_message
        c.busy = link.inbox_full
        reader = asyncio.create_task(c.reader_loop())
        most = 0
        for _ in range(500):
            most = max(most, len(link.inbox))
            link.handle_inbox()
            if len(app.commands) == 20:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        self.assertEqual(app.commands, payloads)  # every one, in order
        self.assertLessEqual(most, 8)
        self.assertEqual(stream.written, b"".join(mqtt.puback_packet(i) for i in range(1, 21)))
        self.assertTrue(reader.done())  # it ended at the end of the stream
        self.assertEqual(app.faults, [])


if __name__ == "__main__":
    unittest.main()
