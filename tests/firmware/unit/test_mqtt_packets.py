# Runs under pytest and inside the MicroPython VM.
import unittest

from bench import connect, mqtt


class CloseTest(unittest.TestCase):
    def test_close_closes_the_socket_under_micropythons_stream(self):
        class Sock:
            closed = False

            def close(self):
                self.closed = True

        class Stream:  # MicroPython's asyncio Stream: close() leaves the socket open
            def __init__(self, s):
                self.s = s

            def close(self):
                pass

        sock = Sock()
        c = mqtt.Client(60)
        c.reader = c.writer = Stream(sock)
        c.close()
        self.assertTrue(sock.closed)
        self.assertIsNone(c.writer)
        c.close()  # twice is harmless


class PacketTest(unittest.TestCase):
    def test_remaining_length_boundaries(self):
        cases = [
            (0, b"\x00"),
            (127, b"\x7f"),
            (128, b"\x80\x01"),
            (16383, b"\xff\x7f"),
            (16384, b"\x80\x80\x01"),
            (2097151, b"\xff\xff\x7f"),
            (2097152, b"\x80\x80\x80\x01"),
            (268435455, b"\xff\xff\xff\x7f"),
        ]
        for n, enc in cases:
            self.assertEqual(mqtt.encode_length(n), enc)
            self.assertEqual(mqtt.decode_length(b"\x30" + enc), (n, 1 + len(enc)))

    def test_publish_of_127_and_128_byte_bodies(self):
        for size in (127, 128, 16383, 16384):
            topic = "t"
            payload = b"x" * (size - 2 - len(topic) - 2)
            pkt = mqtt.publish_packet(topic, payload, qos=1, pid=9)
            n, i = mqtt.decode_length(pkt)
            self.assertEqual(n, size)
            kind, v = mqtt.parse(pkt[0], pkt[i:])
            self.assertEqual(v[0], "t")
            self.assertEqual(v[1], payload)
            self.assertEqual(v[3], 9)

    def test_five_length_bytes_are_malformed(self):
        with self.assertRaises(mqtt.MQTTError):
            mqtt.decode_length(b"\x30\xff\xff\xff\xff\x01")
        with self.assertRaises(mqtt.MQTTError):
            mqtt.decode_length(b"\x30\xff")

    def test_connect_carries_the_will_and_credentials(self):
        pkt = connect.connect_packet("mostar-01", 60, "mostar-01", "pw", ("s/t", "off", True, 1))
        n, i = mqtt.decode_length(pkt)
        body = pkt[i:]
        self.assertEqual(body[:6], b"\x00\x04MQTT")
        self.assertEqual(body[6], 4)
        self.assertEqual(body[7], 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02)
        self.assertEqual(body[8:10], b"\x00\x3c")
        self.assertIn(b"off", body)

    def test_subscribe_asks_qos_1_for_each_topic(self):
        pkt = connect.subscribe_packet(7, ["a/b", "c"])
        self.assertEqual(pkt, b"\x82\x0c\x00\x07\x00\x03a/b\x01\x00\x01c\x01")

    def test_malformed_packets_raise_and_never_assert(self):
        bad = [
            (0x20, b"\x00"),
            (0x20, b"\x02\x00"),
            (0x36, b"\x00\x01t\x00\x01"),
            (0x32, b"\x00\x05ab"),
            (0x32, b"\x00\x01t\x00\x00"),
            (0x40, b"\x00"),
            (0x90, b"\x00\x01\x05"),
            (0xD0, b"\x00"),
            (0x10, b""),
            (0xF0, b""),
            (0x30, b"\x00\x00"),
        ]
        for first, body in bad:
            with self.assertRaises(mqtt.MQTTError):
                mqtt.parse(first, body)

    def test_good_acks_parse(self):
        self.assertEqual(mqtt.parse(0x20, b"\x00\x00"), (0x20, 0))
        self.assertEqual(mqtt.parse(0x40, b"\x01\x02"), (0x40, 258))
        self.assertEqual(mqtt.parse(0x90, b"\x00\x07\x01\x01"), (0x90, 7))
        self.assertEqual(mqtt.parse(0xD0, b""), (0xD0, None))


if __name__ == "__main__":
    unittest.main()
