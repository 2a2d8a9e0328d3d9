"""Checks of what clients send: each failure names the field it is about (`votes[3].ts: ...`).

The API, the `klupa portal poll create` command and the tests share these, so a rule lives here
once. Numbers follow docs/protocol.md: an integer field accepts a JSON number with a zero fraction,
a float field accepts an integer.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from klupa import contract
from portal import names


class BadField(ValueError):
    """A client's input is wrong; `field` is its path in the body (or a query parameter)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def need_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadField(field, "must be a JSON object")
    return value


def need_list(obj: dict[str, Any], key: str, field: str, most: int | None = None) -> list[Any]:
    if key not in obj:
        raise BadField(field, "is required")
    value = obj[key]
    if not isinstance(value, list):
        raise BadField(field, "must be a list")
    if most is not None and len(value) > most:
        raise BadField(field, f"has {len(value)} items; at most {most} per request")
    return value


def need_short(obj: dict[str, Any], key: str, field: str, most: int) -> str:
    """Text of at most `most` characters, with nothing text_problem() refuses (the API's
    schema says so: a vote's poll or choice with a control character is a 400, not an item)."""
    value = need_str(obj, key, field)
    problem = text_problem(value)
    if problem:
        raise BadField(field, problem)
    if len(value) > most:
        raise BadField(field, f"is {len(value)} characters; at most {most}")
    return value


# Bidirectional embeddings, overrides and isolates: they reorder what a reader sees, so a
# label could show one thing and mean another.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def text_problem(value: str) -> str:
    """Why `value` cannot be stored or shown as text ("" if it can): NUL and other control
    characters (PostgreSQL refuses NUL), bidi overrides, and lone surrogates (not UTF-8)."""
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cc":
            return f"must not contain control characters (U+{ord(ch):04X})"
        if category == "Cs":
            return f"must not contain a lone surrogate (U+{ord(ch):04X}); it is not UTF-8"
        if ch in BIDI_CONTROLS:
            return f"must not contain bidirectional controls (U+{ord(ch):04X})"
    return ""


def need_text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise BadField(field, "must be a string")
    problem = text_problem(value)
    if problem:
        raise BadField(field, problem)
    return value


def need_str(
    obj: dict[str, Any], key: str, field: str, pattern: re.Pattern[str] | None = None
) -> str:
    if key not in obj or obj[key] is None:
        raise BadField(field, "is required")
    value = need_text(obj[key], field)
    if pattern is not None and not pattern.fullmatch(value):
        raise BadField(field, f"{value!r} does not match {pattern.pattern}")
    return value


def need_int(
    obj: dict[str, Any], key: str, field: str, low: int | None = None, high: int | None = None
) -> int:
    if key not in obj or obj[key] is None:
        raise BadField(field, "is required")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadField(field, "must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise BadField(field, "must be an integer")
        value = int(value)
    if low is not None and value < low:
        raise BadField(field, f"must be at least {low}")
    if high is not None and value > high:
        raise BadField(field, f"must be at most {high}")
    return value


def need_time(obj: dict[str, Any], key: str) -> int:
    """A poll's ``opens``/``closes``: a float by docs/protocol.md's number rule (at most 3
    decimals), kept as the whole second at or after it. Vote times are whole seconds, so ``opens <= ts <
    closes`` judges every vote alike with either, and the store keeps integers."""
    if key not in obj or obj[key] is None:
        raise BadField(key, "is required")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadField(key, "must be a Unix time in seconds")
    if not 0 <= value <= 2**53:  # also refuses NaN, and ints too big for a float
        raise BadField(key, "must be a Unix time from 0 to 2^53")
    if isinstance(value, float) and round(value, 3) != value:
        raise BadField(key, "has more than 3 decimals")
    return math.ceil(value)


def need_float(
    obj: dict[str, Any],
    key: str,
    field: str,
    low: float | None = None,
    high: float | None = None,
    optional: bool = False,
) -> float | None:
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise BadField(field, "is required")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadField(field, "must be a number")
    try:
        value = float(value)
    except OverflowError as exc:  # an integer literal beyond any double
        raise BadField(field, "must be a finite number") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise BadField(field, "must be a finite number")
    if low is not None and value < low:
        raise BadField(field, f"must be at least {low:g}")
    if high is not None and value > high:
        raise BadField(field, f"must be at most {high:g}")
    return value


def need_bool(obj: dict[str, Any], key: str, field: str) -> bool:
    if key not in obj or obj[key] is None:
        raise BadField(field, "is required")
    value = obj[key]
    if not isinstance(value, bool):
        raise BadField(field, "must be true or false")
    return value


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or BadField("body", ...)."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise BadField("body", "is not UTF-8") from exc
    except ValueError as exc:
        raise BadField("body", f"is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise BadField("body", "is nested too deeply") from exc
    return need_object(value, "body")


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON does not have (and no count can be).
    raise ValueError(f"{name} is not a JSON number")


# --------------------------------------------------------------------------- polls


def _texts(value: Any, field: str, limit: int) -> dict[str, str]:
    texts = need_object(value, field)
    if "bs" not in texts:
        raise BadField(f"{field}.bs", "is required (Bosnian)")
    out: dict[str, str] = {}
    for lang, text in texts.items():
        where = f"{field}.{lang}"
        if lang not in contract.POLL_LANGUAGES:
            raise BadField(where, f"unknown language; use {', '.join(contract.POLL_LANGUAGES)}")
        if not isinstance(text, str) or not text.strip():
            raise BadField(where, "must be a non-empty string")
        need_text(text, where)
        if len(text) > limit:
            raise BadField(where, f"is {len(text)} characters; at most {limit}")
        out[lang] = text
    return out


def poll_wire(
    poll_id: str, opens: int, closes: int, question: dict[str, str], options: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Poll object exactly as docs/protocol.md has it (what benches and gateways get)."""
    return {
        "v": contract.VERSION,
        "id": poll_id,
        "opens": opens,
        "closes": closes,
        "question": question,
        "options": options,
    }


@dataclass(frozen=True)
class PollSpec:
    """A checked poll: the Poll of docs/protocol.md plus where it runs and how results are shown."""

    id: str
    opens: int
    closes: int
    question: dict[str, str]
    options: list[dict[str, Any]]
    municipalities: list[str]
    results: str = "live"

    def wire(self) -> dict[str, Any]:
        """The Poll as benches and gateways get it (poll_wire)."""
        return poll_wire(self.id, self.opens, self.closes, self.question, self.options)


def check_poll(body: Any) -> PollSpec:
    """Check a Poll plus `municipalities` (and optional `results`: live | after_close)."""
    obj = need_object(body, "body")
    if "v" in obj and obj["v"] != contract.VERSION:
        raise BadField("v", f"must be {contract.VERSION}")
    poll_id = need_str(obj, "id", "id", contract.POLL_ID_RE)
    opens = need_time(obj, "opens")
    closes = need_time(obj, "closes")
    if closes <= opens:
        raise BadField("closes", "must be later than opens")
    if "question" not in obj:
        raise BadField("question", "is required")
    question = _texts(obj["question"], "question", contract.QUESTION_MAX)
    raw_options = need_list(obj, "options", "options")
    if not contract.OPTIONS_MIN <= len(raw_options) <= contract.OPTIONS_MAX:
        raise BadField(
            "options",
            f"has {len(raw_options)}; a poll has {contract.OPTIONS_MIN} to {contract.OPTIONS_MAX} options",
        )
    options: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_options):
        where = f"options[{i}]"
        option = need_object(raw, where)
        option_id = need_str(option, "id", f"{where}.id", contract.OPTION_ID_RE)
        if option_id in seen:
            raise BadField(f"{where}.id", f"{option_id!r} is used twice")
        seen.add(option_id)
        if "label" not in option:
            raise BadField(f"{where}.label", "is required")
        label = _texts(option["label"], f"{where}.label", contract.LABEL_MAX)
        options.append({"id": option_id, "label": label})
    raw_places = need_list(obj, "municipalities", "municipalities")
    if not raw_places:
        raise BadField("municipalities", "must name at least one municipality")
    places: list[str] = []
    for i, place in enumerate(raw_places):
        if not isinstance(place, str) or not contract.MUNICIPALITY_RE.fullmatch(place):
            raise BadField(f"municipalities[{i}]", f"{place!r} is not a municipality id")
        if place not in places:
            places.append(place)
    results = obj.get("results", "live")
    if results not in names.RESULTS_MODES:
        raise BadField("results", f"must be one of {', '.join(names.RESULTS_MODES)}")
    spec = PollSpec(poll_id, opens, closes, question, options, places, results)
    size = len(json.dumps(spec.wire(), ensure_ascii=False, separators=(",", ":")).encode())
    if size > contract.MAX_POLL_PAYLOAD:
        raise BadField("body", f"the Poll is {size} bytes; at most {contract.MAX_POLL_PAYLOAD}")
    return spec


# --------------------------------------------------------------------------- votes, days, benches


@dataclass(frozen=True)
class VoteItem:
    id: str
    municipality: str
    bench: str
    poll: str
    choice: str
    ts: int


def each_object(body: dict[str, Any], key: str, most: int) -> Iterator[tuple[dict[str, Any], str]]:
    """Each item of the list `key` (at most `most`), an object, with where it is (`votes[3]`)."""
    for i, raw in enumerate(need_list(body, key, key, most)):
        where = f"{key}[{i}]"
        yield need_object(raw, where), where


def check_votes(body: dict[str, Any]) -> list[VoteItem]:
    return [check_vote(obj, w) for obj, w in each_object(body, "votes", names.VOTES_PER_REQUEST)]


def check_vote(obj: dict[str, Any], where: str) -> VoteItem:
    vote_id = need_str(obj, "id", f"{where}.id")
    bench = need_str(obj, "bench", f"{where}.bench", contract.BENCH_RE)
    return VoteItem(
        id=canonical_vote_id(vote_id, f"{where}.id"),
        municipality=need_str(
            obj, "municipality", f"{where}.municipality", contract.MUNICIPALITY_RE
        ),
        bench=bench,
        # A vote for a malformed poll or choice id is judged (rejected) like an unknown one.
        poll=need_short(obj, "poll", f"{where}.poll", names.POLL_REF_MAX),
        choice=need_short(obj, "choice", f"{where}.choice", names.CHOICE_REF_MAX),
        ts=need_int(obj, "ts", f"{where}.ts", low=0, high=contract.TIME_MAX),
    )


def canonical_vote_id(vote_id: str, field: str) -> str:
    """`vote_id` if it is `bench/boot/seq` written canonically (ASCII decimal, no leading zero,
    at most 15 digits), so one vote has one id: `mostar-01/017/1236` is refused, not a second
    vote. (An id naming another bench than the vote's is judged per item: store.ingest_votes.)"""
    if names.VOTE_ID_RE.fullmatch(vote_id) is None:
        raise BadField(
            field,
            f"{vote_id!r} is not bench/boot/seq (boot and seq as decimal numbers from 1, "
            "without leading zeros, at most 15 digits)",
        )
    return vote_id


@dataclass(frozen=True)
class BenchDay:
    municipality: str
    bench: str
    date: str
    solar_wh: float
    charge_wh: float
    sessions: int
    seat_occ_s: int
    touches: int
    votes: int
    uptime_pct: float


def check_days(body: dict[str, Any]) -> list[BenchDay]:
    return [check_day(obj, w) for obj, w in each_object(body, "days", names.DAYS_PER_REQUEST)]


def check_day(obj: dict[str, Any], w: str) -> BenchDay:
    date = need_str(obj, "date", f"{w}.date", names.DATE_RE)
    try:
        datetime.date.fromisoformat(date)
    except ValueError as exc:
        raise BadField(f"{w}.date", f"{date!r} is not a calendar date") from exc
    return BenchDay(
        municipality=need_str(obj, "municipality", f"{w}.municipality", contract.MUNICIPALITY_RE),
        bench=need_str(obj, "bench", f"{w}.bench", contract.BENCH_RE),
        date=date,
        solar_wh=need_float(obj, "solar_wh", f"{w}.solar_wh", low=0) or 0.0,
        charge_wh=need_float(obj, "charge_wh", f"{w}.charge_wh", low=0) or 0.0,
        sessions=need_int(obj, "sessions", f"{w}.sessions", low=0, high=names.COUNT_MAX),
        seat_occ_s=need_int(obj, "seat_occ_s", f"{w}.seat_occ_s", low=0, high=86400),
        touches=need_int(obj, "touches", f"{w}.touches", low=0, high=names.COUNT_MAX),
        votes=need_int(obj, "votes", f"{w}.votes", low=0, high=names.COUNT_MAX),
        uptime_pct=need_float(obj, "uptime_pct", f"{w}.uptime_pct", low=0, high=100) or 0.0,
    )


@dataclass(frozen=True)
class BenchStatus:
    municipality: str
    online: bool
    last_seen: int | None
    soc: float | None
    power: str | None
    fw: str | None


def check_bench_status(body: dict[str, Any]) -> BenchStatus:
    last_seen = None
    if body.get("last_seen") is not None:
        last_seen = need_int(body, "last_seen", "last_seen", low=0, high=names.LAST_SEEN_MAX)
    power = None
    if body.get("power") is not None:
        power = need_str(body, "power", "power")
        if power not in contract.POWER_STATES:
            raise BadField("power", f"must be one of {', '.join(contract.POWER_STATES)}")
    fw = None
    if body.get("fw") is not None:
        fw = need_str(body, "fw", "fw")
        if len(fw) > names.FW_MAX:
            raise BadField("fw", f"is longer than {names.FW_MAX} characters")
    return BenchStatus(
        municipality=need_str(body, "municipality", "municipality", contract.MUNICIPALITY_RE),
        online=need_bool(body, "online", "online"),
        last_seen=last_seen,
        soc=need_float(body, "soc", "soc", low=0, high=100, optional=True),
        power=power,
        fw=fw,
    )


@dataclass(frozen=True)
class Heartbeat:
    version: str
    ts: int
    lag_s: float


LAG_MAX_S = 10.0**9  # a third of a century: beyond any spool's retention


def check_heartbeat(body: dict[str, Any]) -> Heartbeat:
    """A gateway's `{"version", "ts", "lag_s"}` (PUT /api/v1/gateways/{municipality})."""
    version = need_str(body, "version", "version")
    if not version.strip() or len(version) > names.VERSION_MAX:
        raise BadField("version", f"must be 1 to {names.VERSION_MAX} characters")
    return Heartbeat(
        version=version,
        ts=need_int(body, "ts", "ts", low=0, high=contract.TIME_MAX),
        lag_s=need_float(body, "lag_s", "lag_s", low=0, high=LAG_MAX_S) or 0.0,
    )
