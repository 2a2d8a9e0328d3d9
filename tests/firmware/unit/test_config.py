# Runs under pytest and inside the MicroPython VM.
# /config.json's validation (bench.config, run at boot): a broken config is refused with the
# field named (on the bench: a `fault` event and safe mode), a good one gets its defaults,
# and `set` arguments are checked with the allowed range named.
import unittest

from bench import config


def good():
    return {
        "bench": "zepce-01",
        "municipality": "zepce",
        "wifi": {"ssid": "klupa"},
        "mqtt": {"host": "gw.local"},
    }


def refused(change):
    d = good()
    change(d)
    try:
        config.validate_config(d)
    except config.ConfigError as e:
        return e.args[0], e.args[1]
    return None


class ConfigTest(unittest.TestCase):
    def test_a_broken_config_is_refused_naming_the_field(self):
        cases = [
            (lambda d: d.update(bench="Zepce-01"), "bench id invalid"),
            (lambda d: d.update(bench="1zepce"), "bench id invalid"),
            (lambda d: d.update(bench="zepce_01"), "bench id invalid"),
            (lambda d: d.update(bench="ab"), "bench id invalid"),
            (lambda d: d.update(bench="žepče-01"), "bench id invalid"),
            (lambda d: d.update(municipality="Žepče"), "municipality invalid"),
            (lambda d: d["mqtt"].update(user=7), "mqtt.user has the wrong type"),
            (lambda d: d["mqtt"].update(port=0), "mqtt.port out of range"),
            (lambda d: d.pop("wifi"), "wifi missing"),
            (lambda d: d["wifi"].pop("ssid"), "wifi.ssid missing"),
            (lambda d: d.update(period=5), "period out of range"),
        ]
        for change, named in cases:
            got = refused(change)
            self.assertIsNotNone(got, named)
            self.assertEqual(got[0], "bad_config")
            self.assertIn(named, got[1])

    def test_a_good_config_gets_its_defaults(self):
        cfg = config.validate_config(good())
        self.assertEqual(cfg["bench"], "zepce-01")
        self.assertEqual(cfg["mqtt"]["port"], 1883)
        self.assertEqual((cfg["period"], cfg["keepalive"]), (60, 60))
        tls = good()
        tls["mqtt"]["tls"] = True
        self.assertEqual(config.validate_config(tls)["mqtt"]["port"], 8883)

    def test_set_arguments_are_checked_with_the_range_named(self):
        th = {"saver_soc": 40.0, "critical_soc": 15.0}
        self.assertEqual(
            config.check_settings({"period": 5}, th), ("period out of range 10..3600", None)
        )
        self.assertEqual(config.check_settings({"period": 120.0}, th), (None, {"period": 120}))
        self.assertEqual(
            config.check_settings({"saver_soc": 10}, th)[0], "critical_soc must be below saver_soc"
        )
        self.assertEqual(config.check_settings({"colour": 1}, th)[0], "unknown key colour")
        # json reads 1e999 as inf: named as out of range or not an integer, never a crash
        inf = float("inf")
        self.assertEqual(config.check_settings({"period": inf}, th)[0], "period must be an integer")
        self.assertEqual(
            config.check_settings({"saver_soc": inf}, th)[0], "saver_soc out of range 0..100"
        )
