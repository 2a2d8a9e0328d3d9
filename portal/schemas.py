"""The JSON Schemas of the portal's bodies and answers, written from the checks' own limits.

portal.openapi puts them into the OpenAPI description; every constraint portal.checks enforces on
a request body is stated here, and every answer's shape.
"""

from __future__ import annotations

from typing import Any

from klupa import contract
from portal import names
from portal.checks import BIDI_CONTROLS, LAG_MAX_S

Schema = dict[str, Any]

# A text field: no C0/C1 control characters and no bidi embeddings, overrides or isolates.
_BIDI = "".join(f"\\u{ord(c):04x}" for c in sorted(BIDI_CONTROLS))
_REFUSED = f"\\u0000-\\u001f\\u007f-\\u009f{_BIDI}"
TEXT_PATTERN = f"^[^{_REFUSED}]*$"
# A text that must not be blank holds a character str.strip() keeps (portal.checks strips): the
# white space Python knows, outside the controls refused anyway, written out from str.isspace.
_SPACES = "".join(f"\\u{c:04x}" for c in [0x20, *range(0xA0, 0x10000)] if chr(c).isspace())
NOT_BLANK_PATTERN = f"^[^{_REFUSED}]*[^{_REFUSED}{_SPACES}][^{_REFUSED}]*$"
STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}


def _pattern(regex: Any) -> str:
    return str(regex.pattern)


def text(most: int, least: int = 0, **extra: Any) -> Schema:
    """A text of at most ``most`` characters; with ``least``, also not blank (white space only)."""
    pattern = NOT_BLANK_PATTERN if least else TEXT_PATTERN
    schema: Schema = {"type": "string", "pattern": pattern, "maxLength": most}
    if least:
        schema["minLength"] = least
    return {**schema, **extra}


def named(regex: Any, **extra: Any) -> Schema:
    return {"type": "string", "pattern": _pattern(regex), **extra}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """An object with `properties`, all of them required unless `required` names those that are."""
    need = list(properties) if required is None else required
    return {"type": "object", "required": need, "properties": properties}


def strings(*keys: str) -> Schema:
    """An object of required string fields."""
    return obj({key: STRING for key in keys})


def batch(key: str, most: int, item: Schema) -> Schema:
    """A request body that is one list, `key`, of at most `most` items."""
    return obj({key: {"type": "array", "maxItems": most, "items": item}})


def number(least: float, most: float | None = None) -> Schema:
    schema: Schema = {"type": "number", "minimum": least}
    return schema if most is None else {**schema, "maximum": most}


ERROR = obj({"error": {"type": "string", "description": "`field: what is wrong`"}})
OK = obj({"ok": {"const": True}})

MUNICIPALITY = named(contract.MUNICIPALITY_RE, description="municipality id, e.g. `mostar`")
BENCH = named(contract.BENCH_RE, description="bench id, e.g. `mostar-01`")
POLL_ID = named(contract.POLL_ID_RE)
DATE = {"type": "string", "format": "date", "pattern": _pattern(names.DATE_RE)}
COUNT = {"type": "integer", "minimum": 0, "maximum": names.COUNT_MAX}
TIME = {"type": "integer", "minimum": 0, "maximum": contract.TIME_MAX, "description": "Unix s"}
POLL_TIME = {
    "type": "number",
    "minimum": 0,
    "maximum": contract.TIME_MAX,
    "description": "Unix s, at most 3 decimals; kept as the whole second at or after it",
}
TEXTS_OF = {"bs": "Bosnian (required)", "hr": "Croatian", "sr": "Serbian", "en": "English"}


def texts(most: int) -> Schema:
    return {
        "type": "object",
        "required": ["bs"],
        "additionalProperties": False,
        "properties": {
            lang: text(most, 1, description=f"{what}; not blank") for lang, what in TEXTS_OF.items()
        },
    }


# --------------------------------------------------------------------------- polls

OPTION = obj({"id": named(contract.OPTION_ID_RE), "label": texts(contract.LABEL_MAX)})
POLL = obj(
    {
        "v": {"const": contract.VERSION},
        "id": POLL_ID,
        "opens": POLL_TIME,
        "closes": POLL_TIME,
        "question": texts(contract.QUESTION_MAX),
        "options": {
            "type": "array",
            "minItems": contract.OPTIONS_MIN,
            "maxItems": contract.OPTIONS_MAX,
            "items": OPTION,
        },
    }
)

NEW_POLL = {
    **POLL,
    "required": [*POLL["required"], "municipalities"],
    "description": "A Poll (PROTOCOL.md) plus where it runs. `closes` must be later than "
    "`opens` (with a whole second between), option ids distinct, and the Poll as published at "
    f"most {contract.MAX_POLL_PAYLOAD} bytes.",
    "properties": {
        **POLL["properties"],
        "municipalities": {"type": "array", "minItems": 1, "items": MUNICIPALITY},
        "results": {"enum": list(names.RESULTS_MODES), "default": "live"},
    },
}

LISTED_POLL = {
    **POLL,
    "required": [*POLL["required"], "results"],
    "description": "A Poll plus `results`: `after_close` when its per-choice figures are "
    "published only once it closes (the gateway keeps them back until then), else `live`.",
    "properties": {
        **POLL["properties"],
        "results": {"enum": list(names.RESULTS_MODES)},
    },
}

COUNTS = {"type": "object", "additionalProperties": INTEGER}
RESULTS = {
    "oneOf": [
        obj(
            {
                "poll": STRING,
                "total": INTEGER,
                "choices": COUNTS,
                "benches": {"type": "object", "additionalProperties": COUNTS},
                "digests": {
                    "type": "object",
                    "description": "A closed poll only: per bench, the SHA-256 (hex) of the "
                    "UTF-8 lines `<vote id>,<choice>\\n` of its counted votes sorted by id",
                    "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
            },
            required=["poll", "total", "choices", "benches"],
        ),
        obj({"poll": STRING, "hidden": {"const": True}, "closes": INTEGER}),
    ]
}

# --------------------------------------------------------------------------- what gateways write

VOTE = obj(
    {
        "id": named(
            names.VOTE_ID_RE,
            description="bench/boot/seq, decimal without leading zeros; an id of another bench "
            "than `bench` is a rejected item",
        ),
        "municipality": MUNICIPALITY,
        "bench": BENCH,
        "poll": text(names.POLL_REF_MAX, description="an unknown poll is a rejected item"),
        "choice": text(names.CHOICE_REF_MAX, description="an unknown choice is a rejected item"),
        "ts": TIME,
    }
)

DAY = obj(
    {
        "municipality": MUNICIPALITY,
        "bench": BENCH,
        "date": DATE,
        "solar_wh": number(0),
        "charge_wh": number(0),
        "sessions": COUNT,
        "seat_occ_s": {"type": "integer", "minimum": 0, "maximum": 86400},
        "touches": COUNT,
        "votes": COUNT,
        "uptime_pct": number(0, 100),
    }
)

BENCH_STATE = obj(
    {
        "municipality": MUNICIPALITY,
        "online": {"type": "boolean"},
        "last_seen": nullable({"type": "integer", "minimum": 0, "maximum": names.LAST_SEEN_MAX}),
        "soc": nullable(number(0, 100)),
        "power": nullable({"enum": list(contract.POWER_STATES)}),
        "fw": nullable(text(names.FW_MAX)),
    },
    required=["municipality", "online"],
)

HEARTBEAT = obj({"version": text(names.VERSION_MAX, 1), "ts": TIME, "lag_s": number(0, LAG_MAX_S)})

REJECTED_VOTE = strings("id", "reason")
REJECTED_DAY = strings("bench", "date", "reason")
VOTES_OUTCOME = obj(
    {
        "accepted": INTEGER,
        "duplicates": INTEGER,
        "rejected": {"type": "array", "items": REJECTED_VOTE},
    }
)
DAYS_OUTCOME = obj({"upserted": INTEGER, "rejected": {"type": "array", "items": REJECTED_DAY}})

# --------------------------------------------------------------------------- open data

VOTES_JSON = obj(
    {
        "poll": STRING,
        "licence": STRING,
        "attribution": STRING,
        "columns": {"type": "object", "additionalProperties": STRING},
        "votes": {
            "type": "array",
            "items": strings("id", "municipality", "bench", "minute", "choice"),
        },
    }
)
