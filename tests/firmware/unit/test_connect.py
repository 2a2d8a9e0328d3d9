# Runs under pytest and inside the MicroPython VM: unittest and firmware modules only.
# What the link's connection attempt assumes of the ESP32's MicroPython, where it differs
# from CPython and from the 1970-epoch ports these tests run on: the RTC's epoch (2000 on the
# ESP32), the ssl module's client default (no certificate check in MicroPython), and what
# ntptime raises on a short reply.
import sys
import time
import unittest

from bench import connect, runtime


class Epoch(unittest.TestCase):
    def test_a_2000_epoch_port_gives_unix_seconds_all_the_same(self):
        self.assertEqual(runtime.epoch_offset(lambda t: (2000, 1, 1, 0, 0, 0, 5, 1)), 946684800)
        self.assertEqual(runtime.epoch_offset(lambda t: (1970, 1, 1, 0, 0, 0, 3, 1)), 0)
        # 2000-01-01 in Unix seconds is the offset: the same instant either way.
        self.assertEqual(946684800 // 86400, 10957)

    def test_wall_time_here_is_unix_time(self):
        saved, runtime.CLOCK = runtime.CLOCK, None  # the board's RTC, not a virtual clock
        try:
            self.assertTrue(abs(runtime.wall() - time.time() - runtime._EPOCH) <= 1)
            self.assertGreater(runtime.wall(), 1700000000)  # after 2023: not 30 years early
        finally:
            runtime.CLOCK = saved


class FakeSsl:
    # MicroPython's ssl module as it behaves (micropython-lib's ssl.py over the C tls
    # module): SSLContext(PROTOCOL_TLS_CLIENT) starts with verify_mode = CERT_NONE.
    CERT_NONE = 0
    CERT_OPTIONAL = 1
    CERT_REQUIRED = 2
    PROTOCOL_TLS_CLIENT = 16

    class SSLContext:
        def __init__(self, protocol):
            self.protocol = protocol
            self.verify_mode = 0
            self.cafile = None

        def load_verify_locations(self, cafile=None, cadata=None):
            self.cafile = cafile


class Cfg:
    pass


def link_with(mqtt, ntptime=None):
    link = Cfg()
    link.cfg = {"mqtt": mqtt, "ntp": "ntp.example"}
    link.app = Cfg()
    link.app.root = "/flash"
    link.app.hw = Cfg()
    link.app.hw.ntptime = ntptime
    link.app.clock = []
    link.app.set_clock = lambda now, old: link.app.clock.append(now)
    link.ntp_failed = None
    link.last_ntp = None
    return link


class Tls(unittest.TestCase):
    def setUp(self):
        self.saved = sys.modules.get("ssl")
        sys.modules["ssl"] = FakeSsl

    def tearDown(self):
        if self.saved is None:
            del sys.modules["ssl"]
        else:
            sys.modules["ssl"] = self.saved

    def test_the_brokers_certificate_is_checked_against_the_deployment_ca(self):
        ctx = connect.tls(link_with({"host": "gw", "tls": True, "ca": "ca.crt"}))
        self.assertEqual(ctx.protocol, FakeSsl.PROTOCOL_TLS_CLIENT)
        self.assertEqual(ctx.cafile, "/flash/ca.crt")
        self.assertEqual(ctx.verify_mode, FakeSsl.CERT_REQUIRED)

    def test_no_tls_no_context(self):
        self.assertIsNone(connect.tls(link_with({"host": "gw", "tls": False})))


class Wifi(unittest.IsolatedAsyncioTestCase):
    async def test_a_connect_refused_while_the_driver_reconnects_is_waited_out(self):
        class Sta:
            # The ESP32's station while its driver retries a lost network by itself:
            # esp_wifi_connect() fails ("Wifi Internal Error"), the retry succeeds anyway.
            def __init__(self):
                self.calls = 0

            def isconnected(self):
                return self.calls > 0

            def active(self, on):
                pass

            def connect(self, ssid, key):
                self.calls += 1
                raise OSError("Wifi Internal Error")

        link = link_with({"host": "gw"})
        link.cfg["wifi"] = {"ssid": "klupa-maglaj", "password": "x"}
        link.sta = Sta()
        await connect.wifi(link)
        self.assertEqual(link.sta.calls, 1)


class Ntp(unittest.TestCase):
    def test_a_failed_ntp_exchange_is_noted_not_raised(self):
        class ShortReply:
            host = None

            def settime(self):
                raise ValueError("buffer too small")  # struct.unpack on a short packet

        link = link_with({"host": "gw"}, ShortReply())
        connect.ntp(link)
        self.assertIsNotNone(link.ntp_failed)
        self.assertEqual(link.app.clock, [])
        self.assertEqual(link.app.hw.ntptime.host, "ntp.example")


if __name__ == "__main__":
    unittest.main()
