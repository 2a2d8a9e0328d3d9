"""docs/protocol.md's rules as the host checks them, and bad input through the real gateway."""

from __future__ import annotations

import copy
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_gateway import protocol as P
from edge_gateway.service import Gateway
from edge_gateway.sinks.base import decode_row
from edge_gateway.sinks.influxdb.points import event_point, telemetry_lines
from edge_gateway.store import Row
from klupa.services import Broker
from testkit.fuzz import json_value, mutated
from testkit.gateway import Publisher, dumps, event, telemetry, topic_of, vote, wait_until
from testkit.polls import protocol_poll
from testkit.vm import firmware_module

NOW = 1_795_712_460.0


def generated(times: int = 1) -> settings:
    """Hypothesis settings for the generated tests: KLUPA_HYPOTHESIS_EXAMPLES (300) × times."""
    n = int(os.environ.get("KLUPA_HYPOTHESIS_EXAMPLES", "300")) * times
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


B = "mostar-01"
T = topic_of(B, "telemetry")


PARK_POLL = protocol_poll("mostar-2026-park-lights", 1, 2)


def reason(topic: str, payload: bytes, now: float = NOW) -> str:
    with pytest.raises(P.ProtocolError) as info:
        P.validate(topic, payload, now, "mostar")
    return info.value.reason


def test_the_documented_examples_validate() -> None:
    msg = P.validate(T, dumps(telemetry(B, 17, 1234, int(NOW))), NOW, "mostar")
    assert isinstance(msg, P.Telemetry) and msg.wifi.rssi == -61
    ev = P.validate(
        topic_of(B, "event"),
        dumps(event(B, 17, 1, int(NOW), "session", port=2, s=1820, wh=4.1)),
        NOW,
    )
    assert isinstance(ev, P.Event) and ev.s == 1820
    v = P.validate(
        topic_of(B, "vote"), dumps(vote(B, 17, 2, int(NOW), "mostar-2026-park-lights", "yes")), NOW
    )
    assert isinstance(v, P.Vote)
    st_ = P.validate(topic_of(B, "status"), b'{"v":1,"bench":"mostar-01","state":"offline"}', NOW)
    assert isinstance(st_, P.Status) and st_.state == "offline"


def _documented_events() -> dict[str, set[str]]:
    """The extra fields of each event type in docs/protocol.md's "One of each" examples."""
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text.split("### Events", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    extras: dict[str, set[str]] = {}
    for line in section.split("\n"):
        if line.strip():
            record = json.loads(line)
            extras[record["type"]] = set(record) - set(P.Envelope.__struct_fields__) - {"type"}
    return extras


def test_event_declares_each_documented_type_s_extra_fields_in_its_link() -> None:
    # Event is a chain of links, one per event type; a field dropped or moved to another type's
    # link is caught here, and so is a field the examples do not show.
    documented = _documented_events()
    assert set(documented) == set(P.EVENT_TYPES)
    wire = set(P.Event.__struct_encode_fields__) - set(P.Envelope.__struct_fields__) - {"type"}
    assert wire == set().union(*documented.values())
    links = [c for c in P.Event.__mro__ if c.__name__.endswith("Fields")] + [P.Event]
    for link in links:
        own = set(link.__struct_encode_fields__) - set(link.__mro__[1].__struct_encode_fields__)
        kind = "tamper" if link is P.Event else link.__name__.strip("_").removesuffix("Fields")
        assert own - {"type"} <= documented[kind.lower()], link.__name__
    assert len(links) == len(documented)


def test_integer_with_zero_fraction_is_accepted_as_the_integer() -> None:
    t = telemetry(B, 17.0, 3, int(NOW))
    t["wifi"]["rssi"] = -61.0
    msg = P.validate(T, dumps(t), NOW)
    assert isinstance(msg, P.Telemetry)
    assert msg.wifi.rssi == -61 and type(msg.wifi.rssi) is int and type(msg.boot) is int


def test_integer_with_a_fraction_and_floats_with_four_decimals_are_rejected() -> None:
    t = telemetry(B, 17, 3, int(NOW))
    t["wifi"]["rssi"] = -61.5
    assert reason(T, dumps(t)) == "bad_type"
    t = telemetry(B, 17, 3, int(NOW))
    t["solar"]["v"] = 18.4215
    assert reason(T, dumps(t)) == "bad_type"
    t = telemetry(B, 17, 3, int(NOW))
    t["batt"]["v"] = 13  # a JSON integer is accepted as the float
    assert P.validate(T, dumps(t), NOW)


def test_times_other_than_ts_are_floats_by_the_number_rule() -> None:
    # `until`, `opens` and `closes` are not in docs/protocol.md's list of integers: a float is
    # accepted (kept as the int when its fraction is zero), with at most 3 decimals.
    st = topic_of(B, "status")
    base = '{"v":1,"bench":"mostar-01","state":"sleeping","until":%s}'
    half = P.validate(st, (base % "1795713300.5").encode(), NOW)
    assert isinstance(half, P.Status) and half.until == 1795713300.5
    whole = P.validate(st, (base % "1795713300.0").encode(), NOW)
    assert isinstance(whole, P.Status) and type(whole.until) is int
    assert reason(st, (base % "1795713300.1234").encode()) == "bad_type"
    assert reason(st, (base % '"soon"').encode()) == "bad_type"
    assert reason(st, (base % "-1.5").encode()) == "out_of_range"
    assert reason(st, b'{"v":1,"bench":"mostar-01","state":"sleeping"}') == "missing_field"
    poll = dict(PARK_POLL, opens=1795651000.25, closes=1795651000.5)
    p = P.validate_poll(dumps(poll))
    assert (p.opens, p.closes) == (1795651000.25, 1795651000.5)
    poll["closes"] = 1795651000.125
    with pytest.raises(P.ProtocolError) as info:
        P.validate_poll(dumps(poll))
    assert (info.value.reason, info.value.detail) == ("out_of_range", "closes")


def test_bench_must_match_the_topic_and_municipality_the_gateway() -> None:
    assert reason(T, dumps(telemetry("mostar-02", 1, 1, int(NOW)))) == "bench_mismatch"
    assert (
        reason(
            topic_of("jablanica-01", "telemetry"), dumps(telemetry("jablanica-01", 1, 1, int(NOW)))
        )
        == "wrong_municipality"
    )
    assert reason("klupa/v1/mostar/mostar-01/weather", b"{}") == "bad_topic"
    # Names match their rules whole: a final newline is not let through by `$`.
    assert reason(topic_of("mostar-01\n", "telemetry"), b"{}") == "bad_name"
    bad_vote = vote("mostar-01", 1, 2, int(NOW), "mostar-park\n", "yes")
    assert reason(topic_of("mostar-01", "vote"), dumps(bad_vote)) == "bad_name"


def test_ts_window_is_minus_35_days_to_plus_300_seconds() -> None:
    ok_future = telemetry(B, 1, 1, int(NOW) + 300)
    assert P.validate(T, dumps(ok_future), NOW)
    assert reason(T, dumps(telemetry(B, 1, 1, int(NOW) + 301))) == "ts_future"
    assert P.validate(T, dumps(telemetry(B, 1, 1, int(NOW) - 35 * 86400)), NOW)
    assert reason(T, dumps(telemetry(B, 1, 1, int(NOW) - 35 * 86400 - 1))) == "ts_too_old"


def test_each_event_type_needs_every_field_the_protocol_lists_for_it() -> None:
    E = topic_of(B, "event")
    full = {
        "boot": {"reset": "power_on", "fw": "1.0.0", "safe": False},
        "session": {"port": 2, "s": 1820, "wh": 4.1},
        "power": {"from": "normal", "to": "saver"},
        "fault": {"code": "sensor_env", "detail": "no ack"},
        "clock": {"offset": -61},
        "ota": {"state": "applied", "version": "1.0.1"},
        "tamper": {"kind": "tilt", "detail": "12 degrees"},
    }
    for type_, fields in full.items():
        assert P.validate(E, dumps(event(B, 1, 1, int(NOW), type_, **fields)), NOW)
        for name in fields:
            less = {k: v for k, v in fields.items() if k != name}
            ev = dumps(event(B, 1, 1, int(NOW), type_, **less))
            assert reason(E, ev) == "missing_field", (type_, name)
    # fault: `code` short snake_case, `detail` at most 120 characters
    for code in ("Sensor Env!", "sensor-env", "", "x" * 65):
        ev = event(B, 1, 1, int(NOW), "fault", code=code, detail="")
        assert reason(E, dumps(ev)) == "bad_name", code
    ev = event(B, 1, 1, int(NOW), "fault", code="sensor_env", detail="d" * 121)
    assert reason(E, dumps(ev)) == "out_of_range"


def test_what_the_protocol_does_not_bound_is_accepted() -> None:
    # Limits are docs/protocol.md's: a long `detail` outside a fault, a long firmware version, an
    # ack's long detail, a high port number or temperature are not reasons to lose a record.
    E = topic_of(B, "event")
    tamper = event(B, 1, 1, int(NOW), "tamper", kind="shock", detail="d" * 300)
    assert P.validate(E, dumps(tamper), NOW)
    boot = event(B, 1, 1, int(NOW), "boot", reset="soft", fw="1.2.3-rc.1+" + "f" * 40, safe=True)
    assert P.validate(E, dumps(boot), NOW)
    ack = {"v": 1, "bench": B, "boot": 1, "seq": 1, "ts": int(NOW), "id": "c-1", "ok": True}
    ack["detail"] = "selftest: " + "ok " * 200
    assert P.validate(topic_of(B, "cmd/ack"), dumps(ack), NOW)
    t = telemetry(B, 1, 1, int(NOW))
    t["ports"][1]["n"] = 100
    t["env"]["t"] = 120.5
    t["wifi"]["clients"] = 20_000
    assert P.validate(T, dumps(t), NOW)


def test_size_json_and_shape_reasons() -> None:
    big = telemetry(B, 1, 1, int(NOW), pad="x" * 2100)
    assert reason(T, dumps(big)) == "too_large"
    assert reason(T, b"\xff\xfe{") == "not_json"
    assert reason(T, b"[1,2]") == "not_object"
    assert reason(T, b'{"v":1') == "not_json"
    t = telemetry(B, 1, 1, int(NOW))
    del t["batt"]
    assert reason(T, dumps(t)) == "missing_field"
    t = telemetry(B, 1, 1, int(NOW))
    t["batt"]["soc"] = 100.5
    assert reason(T, dumps(t)) == "out_of_range"
    t = telemetry(B, 1, 0, int(NOW))
    assert reason(T, dumps(t)) == "out_of_range"
    t = telemetry(B, 1, 1, int(NOW), unknown_field={"ignored": True})
    assert P.validate(T, dumps(t), NOW)


def test_poll_rules() -> None:
    good = dict(PARK_POLL)
    assert P.validate_poll(dumps(good)).id == "mostar-2026-park-lights"
    assert P.validate_poll(P.no_poll()).id is None
    bad = copy.deepcopy(good)
    bad["options"] = bad["options"][:1]
    with pytest.raises(P.ProtocolError):
        P.validate_poll(dumps(bad))


def test_the_gateway_and_the_bench_judge_a_poll_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    # The gateway publishes only polls every bench will show: its check and the firmware's
    # (bench.pollcheck) agree on each variant, languages beyond bs/hr/sr/en included.
    from testkit.vm import FIRMWARE_DIR

    monkeypatch.syspath_prepend(str(FIRMWARE_DIR))
    from bench.pollcheck import poll_error

    good = {
        "v": 1,
        "id": "trebinje-2026-klupe",
        "opens": 1795651000,
        "closes": 1798243000,
        "question": {"bs": "Nove klupe?", "sr": "Нове клупе?", "de": "Neue Bänke?"},
        "options": [{"id": "da", "label": {"bs": "Da"}}, {"id": "ne", "label": {"bs": "Ne"}}],
    }

    def variant(path: list[str | int], value: Any) -> dict[str, Any]:
        poll = copy.deepcopy(good)
        cur: Any = poll
        for k in path[:-1]:
            cur = cur[k]
        if value is KeyError:
            del cur[path[-1]]
        else:
            cur[path[-1]] = value
        return poll

    cases = {
        "good": good,
        "empty bs": variant(["question", "bs"], ""),
        "no bs": variant(["question", "bs"], KeyError),
        "long de question": variant(["question", "de"], "x" * 201),
        "200-character question": variant(["question", "bs"], "x" * 200),
        "long en label": variant(["options", 0, "label", "en"], "y" * 25),
        "24-character label": variant(["options", 0, "label", "bs"], "y" * 24),
        "empty label bs": variant(["options", 1, "label", "bs"], ""),
        "number as text": variant(["question", "hr"], 5),
        "one option": variant(["options"], good["options"][:1]),
        "duplicate option": variant(["options", 1, "id"], "da"),
        "closes before opens": variant(["closes"], 1795650000),
        "fractional times": variant(["opens"], 1795651000.5),
        "opens as text": variant(["opens"], "soon"),
        "closes true": variant(["closes"], True),
        "bad id": variant(["id"], "Trebinje"),
        "v 2": variant(["v"], 2),
    }
    for name, poll in cases.items():
        payload = dumps(poll)
        try:
            P.validate_poll(payload)
            gateway_ok = True
        except P.ProtocolError:
            gateway_ok = False
        bench_ok = poll_error(json.loads(payload)) is None
        assert gateway_ok == bench_ok, (name, gateway_ok, poll_error(json.loads(payload)))
        assert gateway_ok == (
            name in ("good", "200-character question", "24-character label", "fractional times")
        )


@generated(times=2)
@given(data=st.data())
def test_the_gateway_and_the_bench_judge_any_changed_poll_alike(data: st.DataObject) -> None:
    # Generated variants of a good poll: both checks answer (no other exception), and alike.
    poll_error = firmware_module("bench.pollcheck").poll_error
    good = {**PARK_POLL, "opens": 1795651000, "closes": 1798243000}
    good["question"] = {"bs": "Više klupa?", "sr": "Више клупа?"}
    payload = json.dumps(data.draw(mutated(good)), ensure_ascii=False, separators=(",", ":"))
    payload = payload.encode()
    try:
        P.validate_poll(payload)
        gateway_ok = True
    except P.ProtocolError:
        gateway_ok = False
    doc = json.loads(payload)
    why = poll_error(doc)
    assert why is None or isinstance(why, str)
    bench_ok = why is None and len(payload) <= 4096  # bench.voting refuses a larger one first
    if not (isinstance(doc, dict) and doc.get("id", 0) is None):  # {"id":null} closes, apart
        assert gateway_ok == bench_ok, (payload[:300], why)


@generated()
@given(
    key=st.sampled_from([*P.SET_RANGES, "colour", "Period", ""]),
    value=json_value | st.floats() | st.integers(-(2**40), 2**40),
)
def test_the_gateway_and_the_bench_judge_a_set_alike(key: str, value: Any) -> None:
    # `klupa gateway cmd … set` refuses what the bench would, before sending it.
    config = firmware_module("bench.config")
    assert config.SETTABLE == P.SET_RANGES
    room = {"saver_soc": 101, "critical_soc": -1}  # no SoC cross-check in the way
    bench_why, _ = config.check_settings({key: value}, room)
    assert (P.set_arg_error(key, value) is None) == (bench_why is None), (key, value, bench_why)


# --------------------------------------------------------------------------- generated bad input

GOOD = telemetry(B, 17, 100, int(NOW) - 60)


def _set(path: list[str | int], value: Any) -> bytes:
    obj = copy.deepcopy(GOOD)
    cur: Any = obj
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return dumps(obj)


def _drop(path: list[str | int]) -> bytes:
    obj = copy.deepcopy(GOOD)
    cur: Any = obj
    for k in path[:-1]:
        cur = cur[k]
    del cur[path[-1]]
    return dumps(obj)


INT_FIELDS = [
    ["boot"],
    ["seq"],
    ["ts"],
    ["period"],
    ["heap"],
    ["wifi", "rssi"],
    ["seat", "occ"],
    ["touch", "n"],
]
FLOAT_FIELDS = [["solar", "v"], ["solar", "a"], ["batt", "v"], ["batt", "soc"], ["ports", 0, "a"]]
REQUIRED = [
    ["v"],
    ["bench"],
    ["boot"],
    ["seq"],
    ["ts"],
    ["period"],
    ["solar"],
    ["batt"],
    ["ports"],
    ["wifi"],
    ["seat"],
    ["touch"],
    ["power"],
    ["heap"],
    ["batt", "soc"],
]
wrong_values = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _nest(depth: int) -> bytes:
    return b'{"v":1,"bench":"mostar-01","boot":' + b"[" * depth + b"]" * depth + b"}"


BAD: st.SearchStrategy[tuple[str, bytes, set[str]]] = st.one_of(
    st.tuples(
        st.just(T),
        st.sampled_from(INT_FIELDS + FLOAT_FIELDS).flatmap(
            lambda p: wrong_values.map(lambda v: _set(p, v))
        ),
        st.just({"bad_type"}),
    ),
    st.tuples(
        st.just(T),
        st.sampled_from(INT_FIELDS).flatmap(
            lambda p: (
                st.floats(allow_nan=False, allow_infinity=False)
                .filter(lambda f: not f.is_integer())
                .map(lambda v: _set(p, v))
            )
        ),
        st.just({"bad_type"}),
    ),
    st.tuples(
        st.just(T),
        st.sampled_from(INT_FIELDS).flatmap(
            lambda p: st.integers(min_value=2**60, max_value=2**200).map(lambda v: _set(p, v))
        ),
        st.just({"out_of_range", "ts_future", "bad_type"}),
    ),
    st.tuples(st.just(T), st.sampled_from(REQUIRED).map(_drop), st.just({"missing_field"})),
    st.tuples(
        st.just(T),
        st.integers(301, 10**6).map(lambda d: _set(["ts"], int(NOW) + d)),
        st.just({"ts_future"}),
    ),
    st.tuples(
        st.just(T),
        st.integers(35 * 86400 + 1, 10**9).map(lambda d: _set(["ts"], int(NOW) - d)),
        st.just({"ts_too_old"}),
    ),
    st.tuples(
        st.just(T),
        st.sampled_from(["mostar-02", "novi-grad-01", "zepce-99"]).map(
            lambda b: _set(["bench"], b)
        ),
        st.just({"bench_mismatch"}),
    ),
    st.tuples(
        st.just(T),
        st.binary(min_size=1, max_size=64).map(lambda b: b"\xff" + b),
        st.just({"not_json"}),
    ),
    st.tuples(
        st.just(T), st.integers(1, 900).map(_nest), st.just({"bad_type", "not_json", "too_deep"})
    ),
    st.tuples(
        st.just(T),
        st.integers(2049, 5000).map(lambda n: b'{"v":1,"x":"' + b"a" * n + b'"}'),
        st.just({"too_large"}),
    ),
    st.tuples(
        st.sampled_from(
            [
                "klupa/v1/mostar/mostar-01/foo",
                "klupa/v1/mostar/Mostar_01/telemetry",
                "klupa/v2/mostar/mostar-01/telemetry",
            ]
        ),
        st.just(dumps(GOOD)),
        st.just({"bad_topic", "bad_name"}),
    ),
)


@generated()
@given(BAD)
def test_generated_bad_payloads_are_rejected_with_their_reason(
    case: tuple[str, bytes, set[str]],
) -> None:
    topic, payload, reasons = case
    with pytest.raises(P.ProtocolError) as info:
        P.validate(topic, payload, NOW, "mostar")
    assert info.value.reason in reasons
    assert info.value.reason in P.REASONS


# One valid message of every kind a bench sends, each event type among them.
VALID: list[tuple[str, dict[str, Any]]] = [
    (T, GOOD),
    (topic_of(B, "vote"), vote(B, 17, 101, int(NOW) - 50, "mostar-park", "yes")),
    (topic_of(B, "event"), event(B, 17, 102, int(NOW) - 40, "session", port=2, s=60, wh=0.5)),
    (
        topic_of(B, "event"),
        event(B, 17, 103, int(NOW) - 40, "boot", reset="wdt", fw="1.0.0", safe=False),
    ),
    (topic_of(B, "event"), event(B, 17, 104, int(NOW) - 30, "clock", offset=-3.5)),
    (
        topic_of(B, "cmd/ack"),
        {
            "v": 1,
            "bench": B,
            "boot": 17,
            "seq": 105,
            "ts": int(NOW),
            "id": "c-1",
            "ok": True,
            "detail": "",
        },
    ),
    (
        topic_of(B, "status"),
        {
            "v": 1,
            "bench": B,
            "state": "online",
            "boot": 17,
            "fw": "1.0.0",
            "mpy": "1.27.0",
            "ts": int(NOW),
        },
    ),
    (topic_of(B, "status"), {"v": 1, "bench": B, "state": "sleeping", "until": int(NOW) + 900}),
]


@generated(times=2)
@given(data=st.data())
def test_any_change_to_a_valid_message_is_valid_or_a_protocol_error(data: st.DataObject) -> None:
    # A payload that raised anything else would stop the gateway's writer and, redelivered by
    # the broker after the restart, stop it again: a poison message.
    # What is accepted must also go out: the stored payload decodes and makes its points (a
    # row that raised there would hold its sink's forwarding up for good).
    topic, good = data.draw(st.sampled_from(VALID))
    payload = json.dumps(data.draw(mutated(good))).encode()
    try:
        msg = P.validate(topic, payload, NOW, "mostar")
    except P.ProtocolError as exc:
        assert exc.reason in P.REASONS
        return
    kind = P.kind_of(msg)
    row = Row(1, B, 17, 100, kind, int(NOW), NOW, payload)
    if kind == "telemetry":
        assert telemetry_lines("mostar", decode_row(row))
    elif kind == "event":
        assert event_point("mostar", decode_row(row)).to_line_protocol()
    elif kind == "vote":
        assert decode_row(row).poll == msg.poll


def test_bad_input_through_the_gateway_is_counted_by_reason_and_never_stored(
    mosquitto: Broker, gateway_factory: Callable[..., Gateway]
) -> None:
    gw = gateway_factory(mosquitto.port)
    now = time.time()
    expected: Counter[str] = Counter()
    # A few hundred bad payloads of every kind, seeded, stamped with the real clock.
    rnd = random.Random(5)
    cases = [_draw(rnd)[:2] for _ in range(300)]
    pub = Publisher(mosquitto.host, mosquitto.port)
    good = 0
    for i, (topic, payload) in enumerate(cases):
        try:
            P.validate(topic, payload, now, "mostar")
            good += 1
        except P.ProtocolError as exc:
            expected[exc.reason] += 1
        pub.publish(topic, payload)
        if i % 30 == 0:
            pub.publish(T, telemetry(B, 18, i + 1, int(now) - 100))
    pub.wait_published()
    total = len(cases) + len(range(0, len(cases), 30))
    wait_until(lambda: gw.counts["received"] >= total, 15, what="every message handled")
    got = {k.split(":", 1)[1]: v for k, v in gw.counts.items() if k.startswith("rejected:")}
    assert got == dict(expected)
    assert gw.counts["rejected"] == sum(expected.values())
    assert gw.counts["accepted"] == good + 10
    rows = gw.store.conn.execute("SELECT kind, count(*) FROM messages GROUP BY kind").fetchall()
    assert dict(rows).get("telemetry") == good + 10


def _draw(rnd: Any) -> tuple[str, bytes, set[str]]:
    """A bad case drawn without hypothesis's engine (fast, seeded)."""
    k = rnd.randrange(7)
    ts = int(time.time()) - 60
    base = telemetry(B, 17, rnd.randrange(1, 10**6), ts)
    if k == 0:
        base["wifi"]["rssi"] = rnd.choice(["-61", True, None, [1], -61.5])
    elif k == 1:
        del base[rnd.choice(["v", "bench", "batt", "ports", "power"])]
    elif k == 2:
        base["ts"] = ts + rnd.randrange(400, 10**6)
    elif k == 3:
        base["bench"] = "mostar-02"
    elif k == 4:
        return T, b"\xff" + bytes(rnd.randrange(256) for _ in range(20)), set()
    elif k == 5:
        d = rnd.randrange(10, 900)
        return T, b'{"v":1,"seat":' + b"[" * d + b"]" * d + b"}", set()
    else:
        base["solar"]["wh"] = -1
    return T, json.dumps(base).encode(), set()
