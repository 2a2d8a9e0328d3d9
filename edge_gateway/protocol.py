"""docs/protocol.md (version 1) payloads as the host reads them (names, limits and topics are
:mod:`klupa.contract`'s, imported here for the gateway's modules).

Everything on the host that reads or writes bench messages (the gateway, the simulator, the
system tests) validates with :func:`validate`, which returns a typed message or raises
:class:`ProtocolError` carrying a short reason code (``bad_type``, ``ts_future``, …) that the
gateway counts by.

msgspec decodes and type-checks in one pass into the Structs of :mod:`edge_gateway.payloads`;
the rules msgspec cannot express (integers written as ``-61.0``, at most 3 decimals, ranges,
the ``ts`` window) are checked after it, here.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from edge_gateway.payloads import (
    CommandAck,
    Envelope,
    Event,
    Message,
    Num,
    Poll,
    Status,
    Telemetry,
    Text,
    Vote,
)

# The names, limits and topics are klupa.contract's; the gateway's modules read them here.
from klupa.contract import (
    BENCH_KINDS,
    BENCH_RE,
    LABEL_MAX,
    MAX_PAYLOAD,
    MAX_POLL_PAYLOAD,
    MUNICIPALITY_RE,
    OPTION_ID_RE,
    OPTIONS_MAX,
    OPTIONS_MIN,
    POLL_ID_RE,
    POWER_STATES,
    QUESTION_MAX,
    ROOT,
    SET_FRACTIONAL,
    SET_RANGES,
    VERSION,
)
from klupa.contract import topic as topic

TS_MAX_FUTURE_S = 300
TS_MAX_AGE_S = 35 * 86400

FAULT_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # "short snake_case"

# Kinds that carry the envelope (bench, boot, seq, ts) and are stored by (bench, boot, seq).
RECORD_KINDS = ("telemetry", "event", "vote", "cmd/ack")

EVENT_TYPES = ("boot", "session", "power", "fault", "clock", "ota", "tamper")
RESET_CAUSES = ("power_on", "hard", "wdt", "deepsleep", "soft")
OTA_STATES = ("downloading", "verified", "applied", "rolled_back", "failed")
TAMPER_KINDS = ("tilt", "shock", "port_overcurrent")
STATUS_STATES = ("online", "offline", "sleeping")
COMMAND_OPS = ("ping", "reboot", "set", "port", "ota", "selftest")


def set_arg_error(key: str, value: Any) -> str | None:
    """Why the bench would refuse `set {key}={value}`, or None (its cross-checks aside)."""
    if key not in SET_RANGES:
        return f"unknown setting {key!r} (one of {', '.join(SET_RANGES)})"
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return f"{key} must be a number"
    if key not in SET_FRACTIONAL and not float(value).is_integer():
        return f"{key} must be a whole number"
    lo, hi = SET_RANGES[key]
    if not lo <= value <= hi:
        return f"{key} out of range {lo}..{hi}"
    return None


# Reason codes, each counted by the gateway.
REASONS = (
    "bad_topic",
    "wrong_municipality",
    "too_large",
    "not_json",
    "not_object",
    "missing_field",
    "bad_type",
    "out_of_range",
    "bad_name",
    "bad_version",
    "bench_mismatch",
    "ts_future",
    "ts_too_old",
    "too_deep",
    "qos0",
    "internal",
    "unstorable",
    "identity_reused",
)
# Rejects for a record's time alone: the clock that judged them may be the wrong one, so they
# are quarantined but never receipted (docs/protocol.md, Receipt); the bench sends them again.
CLOCK_REASONS = ("ts_future", "ts_too_old")
# JSON nesting far deeper than any docs/protocol.md payload needs (Telemetry: 3) is refused before
# the decoder sees it: a decoder recursing 1,000 levels raises RecursionError, not a clean error.
MAX_DEPTH = 32


class ProtocolError(ValueError):
    """A message that breaks docs/protocol.md; ``reason`` is a short code, ``detail`` says where."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "telemetry": msgspec.json.Decoder(Telemetry),
    "event": msgspec.json.Decoder(Event),
    "vote": msgspec.json.Decoder(Vote),
    "cmd/ack": msgspec.json.Decoder(CommandAck),
    "status": msgspec.json.Decoder(Status),
}
_POLL_DECODER = msgspec.json.Decoder(Poll)
_ENCODER = msgspec.json.Encoder()


# --------------------------------------------------------------------------- topics


_topic_cache: dict[str, tuple[str, str, str]] = {}


def parse_topic(t: str) -> tuple[str, str, str]:
    """Split a bench topic into (municipality, bench, kind) or raise ``bad_topic``."""
    hit = _topic_cache.get(t)
    if hit is not None:
        return hit
    parts = t.split("/")
    if len(parts) < 5 or parts[0] + "/" + parts[1] != ROOT:
        raise ProtocolError("bad_topic", t[:80])
    m, b = parts[2], parts[3]
    kind = "/".join(parts[4:])
    if kind not in BENCH_KINDS:
        raise ProtocolError("bad_topic", t[:80])
    if not MUNICIPALITY_RE.fullmatch(m) or not BENCH_RE.fullmatch(b):
        raise ProtocolError("bad_name", t[:80])
    if len(_topic_cache) > 10_000:
        _topic_cache.clear()
    _topic_cache[t] = (m, b, kind)
    return m, b, kind


# --------------------------------------------------------------------------- checks


def _int(value: Num | None, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if type(value) is int and (lo is None or value >= lo) and (hi is None or value <= hi):
        return value
    if value is None:
        raise ProtocolError("missing_field", name)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise ProtocolError("bad_type", f"{name} must be an integer")
        value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ProtocolError("out_of_range", name)
    return value


# A number written with 4 or more decimals, or with an exponent. Where a payload has none,
# every float in it has at most 3 decimals and the per-field check can be skipped.
_MANY_DECIMALS = re.compile(rb"\.[0-9]{4}")
_EXPONENT = re.compile(rb"[eE][-+0-9]")


def _float(
    value: float | None,
    name: str,
    lo: float | None = None,
    hi: float | None = None,
    decimals: bool = True,
) -> float:
    if value is None:
        raise ProtocolError("missing_field", name)
    if value != value or value in (float("inf"), float("-inf")):
        raise ProtocolError("bad_type", name)
    if decimals and round(value, 3) != value:
        raise ProtocolError("bad_type", f"{name} has more than 3 decimals")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ProtocolError("out_of_range", name)
    return value


def _time(value: Num | None, name: str) -> int | float:
    # A Unix time that is not `ts` (`until`, `opens`, `closes`): a float by the number rule,
    # kept as an int when it is one (or has a zero fraction), so stores and sums stay exact.
    if isinstance(value, float) and not value.is_integer():
        return _float(value, name, 0, 2**53)
    return _int(value, name, 0, 2**53)


def _str(value: str | None, name: str, choices: tuple[str, ...] | None = None, n: int = 0) -> str:
    if value is None:
        raise ProtocolError("missing_field", name)
    if choices is not None and value not in choices:
        raise ProtocolError("out_of_range", name)
    if n and len(value) > n:
        raise ProtocolError("out_of_range", name)
    return value


def _reason_of(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    if "missing required field" in text:
        return "missing_field"
    if "out of range" in text:
        return "out_of_range"
    return "bad_type"


def nesting_depth(payload: bytes) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text, brackets inside strings not counted."""
    depth = deepest = 0
    in_str = escaped = False
    for c in payload:
        if in_str:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:  # quote
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
        elif c in (0x5D, 0x7D):
            depth -= 1
    return deepest


def check_depth(payload: bytes, limit: int = MAX_DEPTH) -> None:
    """Raise ``too_deep`` for JSON nested deeper than ``limit`` (cheap for ordinary payloads)."""
    # A payload with fewer opening brackets than the limit cannot be nested past it; only the
    # rare one with many is scanned byte by byte.
    if payload.count(b"[") + payload.count(b"{") > limit and nesting_depth(payload) > limit:
        raise ProtocolError("too_deep", f"JSON nested deeper than {limit} levels")


def decode(kind: str, payload: bytes) -> Any:
    """Decode a payload of a topic kind into its Struct; type errors become ProtocolError."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError("too_large", f"{len(payload)} bytes")
    check_depth(payload)
    if not payload.lstrip()[:1] == b"{":
        try:
            msgspec.json.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError("not_json", str(exc)[:80]) from None
        raise ProtocolError("not_object")
    try:
        return _DECODERS[kind].decode(payload)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_reason_of(exc), str(exc)[:120]) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError("not_json", str(exc)[:80]) from None
    except RecursionError:
        raise ProtocolError("too_deep", "JSON nested too deeply") from None


def _check_envelope(msg: Envelope, bench: str, now: float) -> None:
    if _int(msg.v, "v") != VERSION:
        raise ProtocolError("bad_version", str(msg.v))
    if not BENCH_RE.fullmatch(msg.bench):
        raise ProtocolError("bad_name", "bench")
    if msg.bench != bench:
        raise ProtocolError("bench_mismatch", f"{msg.bench} in topic of {bench}")
    msg.boot = _int(msg.boot, "boot", 1, 2**53)
    msg.seq = _int(msg.seq, "seq", 1, 2**53)
    msg.ts = _int(msg.ts, "ts", 0, 2**53)
    if msg.ts > now + TS_MAX_FUTURE_S:
        raise ProtocolError("ts_future", f"ts {msg.ts} is {msg.ts - now:.0f} s ahead")
    if msg.ts < now - TS_MAX_AGE_S:
        raise ProtocolError("ts_too_old", f"ts {msg.ts}")


def _check_telemetry(t: Telemetry, d: bool = True) -> None:
    t.period = _int(t.period, "period", 10, 3600)
    _float(t.solar.v, "solar.v", None, None, d)
    _float(t.solar.a, "solar.a", None, None, d)
    _float(t.solar.wh, "solar.wh", 0, None, d)
    _float(t.batt.v, "batt.v", None, None, d)
    _float(t.batt.a, "batt.a", None, None, d)
    _float(t.batt.soc, "batt.soc", 0, 100, d)
    seen: set[int] = set()
    for p in t.ports:
        p.n = _int(p.n, "ports.n", 1, 2**31)
        if p.n in seen:
            raise ProtocolError("out_of_range", "ports.n repeated")
        seen.add(p.n)
        _float(p.a, "ports.a", None, None, d)
        _float(p.wh, "ports.wh", 0, None, d)
    t.wifi.rssi = _int(t.wifi.rssi, "wifi.rssi", -127, 0)
    t.wifi.clients = _int(t.wifi.clients, "wifi.clients", 0, 2**31)
    t.seat.occ = _int(t.seat.occ, "seat.occ", 0, t.period)
    t.touch.n = _int(t.touch.n, "touch.n", 0, 2**31)
    if t.env is not None:
        _float(t.env.t, "env.t", None, None, d)
        _float(t.env.rh, "env.rh", 0, 100, d)
    _str(t.power, "power", POWER_STATES)
    t.heap = _int(t.heap, "heap", 0, 2**31)


def _check_event(e: Event) -> None:
    # Every extra field docs/protocol.md lists for the type is required; limits are the spec's only
    # (a value it does not bound is bounded by the 2,048-byte payload).
    _str(e.type, "type", EVENT_TYPES)
    if e.type == "boot":
        _str(e.reset, "reset", RESET_CAUSES)
        _str(e.fw, "fw")
        if e.safe is None:
            raise ProtocolError("missing_field", "safe")
    elif e.type == "session":
        e.port = _int(e.port, "port", 1, 2**31)
        e.s = _int(e.s, "s", 0, 2**31)
        _float(e.wh, "wh", 0)
    elif e.type == "power":
        _str(e.from_, "from", POWER_STATES)
        _str(e.to, "to", POWER_STATES)
    elif e.type == "fault":
        if not FAULT_CODE_RE.fullmatch(_str(e.code, "code")):
            raise ProtocolError("bad_name", "code must be short snake_case")
        if len(_str(e.detail, "detail")) > 120:
            raise ProtocolError("out_of_range", "detail longer than 120 characters")
    elif e.type == "clock":
        e.offset = _int(e.offset, "offset", -(2**53), 2**53)
    elif e.type == "ota":
        _str(e.state, "state", OTA_STATES)
        _str(e.version, "version")
    elif e.type == "tamper":
        _str(e.kind, "kind", TAMPER_KINDS)
        _str(e.detail, "detail")
    for name in ("port", "s", "offset"):
        value = getattr(e, name)
        if value is not None:
            setattr(e, name, _int(value, name))
    if e.wh is not None:
        _float(e.wh, "wh")


def _check_vote(v: Vote) -> None:
    if not POLL_ID_RE.fullmatch(v.poll):
        raise ProtocolError("bad_name", "poll")
    if not OPTION_ID_RE.fullmatch(v.choice):
        raise ProtocolError("bad_name", "choice")


def _check_status(s: Status, bench: str, now: float) -> None:
    if _int(s.v, "v") != VERSION:
        raise ProtocolError("bad_version", str(s.v))
    if s.bench != bench:
        raise ProtocolError("bench_mismatch", f"{s.bench} in topic of {bench}")
    _str(s.state, "state", STATUS_STATES)
    if s.boot is not None:
        s.boot = _int(s.boot, "boot", 1, 2**53)
    if s.ts is not None:
        s.ts = _int(s.ts, "ts", 0, 2**53)
        if s.ts > now + TS_MAX_FUTURE_S:
            raise ProtocolError("ts_future", f"ts {s.ts}")
    if s.state == "sleeping" or s.until is not None:
        s.until = _time(s.until, "until")


def validate(topic: str, payload: bytes, now: float, municipality: str | None = None) -> Message:
    """Check one bench message against docs/protocol.md; return it typed or raise ProtocolError.

    ``now`` is the receiver's clock (Unix s) for the ``ts`` window; with ``municipality`` the
    topic must be that municipality's.
    """
    m, bench, kind = parse_topic(topic)
    if municipality is not None and m != municipality:
        raise ProtocolError("wrong_municipality", m)
    msg = decode(kind, payload)
    if isinstance(msg, Status):
        _check_status(msg, bench, now)
        return msg
    _check_envelope(msg, bench, now)
    if isinstance(msg, Telemetry):
        many = _MANY_DECIMALS.search(payload) or _EXPONENT.search(payload)
        _check_telemetry(msg, many is not None)
    elif isinstance(msg, Event):
        _check_event(msg)
    elif isinstance(msg, Vote):
        _check_vote(msg)
    return msg


def kind_of(msg: Message) -> str:
    """The topic kind a message belongs to."""
    if isinstance(msg, Telemetry):
        return "telemetry"
    if isinstance(msg, Event):
        return "event"
    if isinstance(msg, Vote):
        return "vote"
    if isinstance(msg, CommandAck):
        return "cmd/ack"
    return "status"


def validate_poll(payload: bytes) -> Poll:
    """Check a Poll payload (the retained ``klupa/v1/{m}/poll``); ``{"v":1,"id":null}`` is valid."""
    if len(payload) > MAX_POLL_PAYLOAD:
        raise ProtocolError("too_large", f"{len(payload)} bytes")
    check_depth(payload)
    try:
        poll = _POLL_DECODER.decode(payload)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_reason_of(exc), str(exc)[:120]) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError("not_json", str(exc)[:80]) from None
    if _int(poll.v, "v") != VERSION:
        raise ProtocolError("bad_version")
    if poll.id is None:
        return poll
    if not POLL_ID_RE.fullmatch(poll.id):
        raise ProtocolError("bad_name", "id")
    poll.opens = _time(poll.opens, "opens")
    poll.closes = _time(poll.closes, "closes")
    if poll.closes <= poll.opens:
        raise ProtocolError("out_of_range", "closes")
    if poll.question is None or poll.options is None:
        raise ProtocolError("missing_field", "question" if poll.question is None else "options")
    _check_texts(poll.question, "question", QUESTION_MAX)
    if not OPTIONS_MIN <= len(poll.options) <= OPTIONS_MAX:
        raise ProtocolError("out_of_range", "options")
    ids: set[str] = set()
    for opt in poll.options:
        if not OPTION_ID_RE.fullmatch(opt.id) or opt.id in ids:
            raise ProtocolError("bad_name", "options.id")
        ids.add(opt.id)
        _check_texts(opt.label, "options.label", LABEL_MAX)
    return poll


def _check_texts(texts: Text, name: str, limit: int) -> None:
    if not texts.get("bs"):
        raise ProtocolError("missing_field", f"{name}.bs")
    for lang, text in texts.items():
        if len(text) > limit:
            raise ProtocolError("out_of_range", f"{name}.{lang[:8]} longer than {limit}")


def encode(obj: Any) -> bytes:
    """Compact UTF-8 JSON without ``\\u`` escapes, as the protocol writes payloads."""
    return _ENCODER.encode(obj)


def no_poll() -> bytes:
    """The retained Poll that means "no poll open": never an empty payload."""
    return b'{"v":1,"id":null}'


def receipt_payload(boots: dict[int, list[tuple[int, int]]]) -> bytes:
    """A Receipt: ``{"v":1,"boots":{"17":[[1,1180],[1190,1234]]}}``."""
    return encode(
        {"v": VERSION, "boots": {str(b): [list(r) for r in rs] for b, rs in boots.items()}}
    )
