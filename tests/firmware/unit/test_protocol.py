# Runs under pytest and inside the MicroPython VM.
# The telemetry record's spool form (bench.protocol) packs and unpacks without loss, the
# JSON it becomes carries exact decimals, and the record sizes written into the code as
# constants agree with the struct formats they stand for.
import json
import struct
import sys
import unittest

from bench import protocol

T = {
    "period": 60,
    "solar_mv": 18420,
    "solar_ma": 2051,
    "solar_mwh": 615,
    "batt_mv": 13312,
    "batt_ma": -412,
    "soc_cp": 8734,
    "rssi": -61,
    "clients": 2,
    "occ": 41,
    "touches": 3,
    "power": "saver",
    "heap": 40960,
    "env": (1234, 5678),
    "ports": [(1, True, True, 900, 15), (2, False, False, 0, 0), (5, True, False, 3, 0)],
}


class ProtocolTest(unittest.TestCase):
    def test_receipt_ranges_follow_the_integer_rule(self):
        # Sequence numbers are integers; 1.0 is 1 (docs/protocol.md). Ranges that are not pairs
        # of sequence numbers in order are left out, the others kept.
        got = protocol.parse_receipt(
            json.loads(
                '{"v":1,"boots":{"17":[[1.0,3],[5,5.0],[2.5,4],[true,2],[4,3],[0,2],'
                '["1",2],[7,1e999],[9,9]]}}'
            )
        )
        self.assertEqual(got, {17: [[1, 3], [5, 5], [9, 9]]})
        self.assertEqual(type(got[17][0][0]), int)
        self.assertIsNone(protocol.parse_receipt(json.loads('{"v":1,"boots":{"x":[[1,2]]}}')))

    def test_telemetry_round_trips_through_the_spool_form(self):
        body = protocol.pack_telemetry(T)
        self.assertEqual(len(body), 35 + 6 * 3)
        back = protocol.unpack_telemetry(body)
        for k in T:
            if k == "ports":
                self.assertEqual([tuple(p) for p in back[k]], T[k])
            else:
                self.assertEqual(back[k], T[k], k)

    def test_telemetry_json_has_exact_decimals(self):
        body = protocol.pack_telemetry(T)
        m = json.loads(protocol.telemetry_json("maglaj-01", 3141, 7, 1795651200, body))
        self.assertEqual(m["solar"], {"v": 18.42, "a": 2.051, "wh": 0.615})
        self.assertEqual(m["batt"], {"v": 13.312, "a": -0.412, "soc": 87.34})
        self.assertEqual(m["ports"][0], {"n": 1, "on": True, "plug": True, "a": 0.9, "wh": 0.015})
        self.assertEqual(m["env"], {"t": 12.34, "rh": 56.78})
        self.assertEqual((m["boot"], m["seq"], m["power"]), (3141, 7, "saver"))

    def test_event_and_ack_json_is_utf8_without_escapes(self):
        # docs/protocol.md: UTF-8 JSON "written without \\u escapes for non-ASCII letters", on the
        # bench and on the host (CPython's json escapes them unless told not to).
        from bench.app import frag

        text = "nepoznato: plešem čćđšž ČĆĐŠŽ Жж Љљ"
        body = frag({"id": "c-čćž-1", "ok": False, "detail": text})
        raw = protocol.fragment_json("maglaj-01", 3141, 8, 1795651200, body).encode()
        self.assertNotIn(b"\\u", raw)
        self.assertIn(text.encode(), raw)
        m = json.loads(raw)
        self.assertEqual((m["id"], m["detail"], m["seq"]), ("c-čćž-1", text, 8))

    @unittest.skipIf(sys.implementation.name == "micropython", "const() names are folded away")
    def test_record_size_constants_match_their_formats(self):
        self.assertEqual(protocol._TEL_SIZE, struct.calcsize(protocol._TEL))
        self.assertEqual(protocol._PORT_SIZE, struct.calcsize(protocol._PORT))
