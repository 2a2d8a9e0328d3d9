"""The portal's OpenAPI description (`/api/openapi.json`), written from the checks' own limits.

The routes read their bodies themselves (portal.checks), so FastAPI cannot infer them; this
module states every request constraint the checks enforce and every status each operation
answers, so that a schema-driven client (schemathesis in tests/portal/test_openapi.py) finds a
request the schema allows accepted, one it forbids refused, and every answer documented.
"""

from __future__ import annotations

from typing import Any

from klupa import contract
from portal import names
from portal.checks import BIDI_CONTROLS, LAG_MAX_S

# A text field: no C0/C1 control characters and no bidi embeddings, overrides or isolates.
_BIDI = "".join(f"\\u{ord(c):04x}" for c in sorted(BIDI_CONTROLS))
TEXT_PATTERN = f"^[^\\u0000-\\u001f\\u007f-\\u009f{_BIDI}]*$"


def _pattern(regex: Any) -> str:
    return str(regex.pattern)


def text(most: int, least: int = 0, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "pattern": TEXT_PATTERN, "maxLength": most}
    if least:
        schema["minLength"] = least
    return {**schema, **extra}


def named(regex: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "pattern": _pattern(regex), **extra}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "`field: what is wrong`"}},
}

WHY = {
    400: 'A bad field: `{"error": "field: problem"}` names it',
    401: "No token, or an unknown or revoked one",
    403: "The token may not do this: another municipality's data, a bench not registered to "
    "it, or the admin token writing data (the admin token manages polls only)",
    404: "No such path or id",
    405: "The path does not take this method (the `Allow` header lists those it takes)",
    409: "A poll with this id exists",
    413: "The body is over 1 MiB",
}


def answers(ok: dict[int, tuple[str, dict[str, Any]]], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        str(code): {"description": what, "content": {"application/json": {"schema": schema}}}
        for code, (what, schema) in ok.items()
    }
    for code in sorted({*errors, 405, 413}):
        entry: dict[str, Any] = {
            "description": WHY[code],
            "content": {"application/json": {"schema": ERROR}},
        }
        if code == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if code == 405:
            entry["headers"] = {"Allow": {"schema": {"type": "string"}}}
        out[str(code)] = entry
    return out


def body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


MUNICIPALITY = named(contract.MUNICIPALITY_RE, description="municipality id, e.g. `mostar`")
BENCH = named(contract.BENCH_RE, description="bench id, e.g. `mostar-01`")
POLL_ID = named(contract.POLL_ID_RE)
COUNT = {"type": "integer", "minimum": 0, "maximum": names.COUNT_MAX}
TIME = {"type": "integer", "minimum": 0, "maximum": contract.TIME_MAX, "description": "Unix s"}
POLL_TIME = {
    "type": "number",
    "minimum": 0,
    "maximum": contract.TIME_MAX,
    "description": "Unix s, at most 3 decimals; kept as the whole second at or after it",
}
TEXTS_OF = {"bs": "Bosnian (required)", "hr": "Croatian", "sr": "Serbian", "en": "English"}


def texts(most: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["bs"],
        "additionalProperties": False,
        "properties": {
            lang: text(most, 1, description=f"{what}; not blank") for lang, what in TEXTS_OF.items()
        },
    }


POLL = {
    "type": "object",
    "required": ["v", "id", "opens", "closes", "question", "options"],
    "properties": {
        "v": {"const": contract.VERSION},
        "id": POLL_ID,
        "opens": POLL_TIME,
        "closes": POLL_TIME,
        "question": texts(contract.QUESTION_MAX),
        "options": {
            "type": "array",
            "minItems": contract.OPTIONS_MIN,
            "maxItems": contract.OPTIONS_MAX,
            "items": {
                "type": "object",
                "required": ["id", "label"],
                "properties": {
                    "id": named(contract.OPTION_ID_RE),
                    "label": texts(contract.LABEL_MAX),
                },
            },
        },
    },
}

NEW_POLL = {
    **POLL,
    "required": [*POLL["required"], "municipalities"],
    "description": "A Poll (PROTOCOL.md) plus where it runs. `closes` must be later than "
    "`opens` (with a whole second between), option ids distinct, and the Poll as published at "
    f"most {contract.MAX_POLL_PAYLOAD} bytes.",
    "properties": {
        **POLL["properties"],  # type: ignore[dict-item]
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
        **POLL["properties"],  # type: ignore[dict-item]
        "results": {"enum": list(names.RESULTS_MODES)},
    },
}

VOTE = {
    "type": "object",
    "required": ["id", "municipality", "bench", "poll", "choice", "ts"],
    "properties": {
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
    },
}

DAY = {
    "type": "object",
    "required": [
        "municipality",
        "bench",
        "date",
        "solar_wh",
        "charge_wh",
        "sessions",
        "seat_occ_s",
        "touches",
        "votes",
        "uptime_pct",
    ],
    "properties": {
        "municipality": MUNICIPALITY,
        "bench": BENCH,
        "date": {"type": "string", "format": "date", "pattern": _pattern(names.DATE_RE)},
        "solar_wh": {"type": "number", "minimum": 0},
        "charge_wh": {"type": "number", "minimum": 0},
        "sessions": COUNT,
        "seat_occ_s": {"type": "integer", "minimum": 0, "maximum": 86400},
        "touches": COUNT,
        "votes": COUNT,
        "uptime_pct": {"type": "number", "minimum": 0, "maximum": 100},
    },
}

BENCH_STATE = {
    "type": "object",
    "required": ["municipality", "online"],
    "properties": {
        "municipality": MUNICIPALITY,
        "online": {"type": "boolean"},
        "last_seen": nullable({"type": "integer", "minimum": 0, "maximum": names.LAST_SEEN_MAX}),
        "soc": nullable({"type": "number", "minimum": 0, "maximum": 100}),
        "power": nullable({"enum": list(contract.POWER_STATES)}),
        "fw": nullable(text(names.FW_MAX)),
    },
}

HEARTBEAT = {
    "type": "object",
    "required": ["version", "ts", "lag_s"],
    "properties": {
        "version": text(names.VERSION_MAX, 1),
        "ts": TIME,
        "lag_s": {"type": "number", "minimum": 0, "maximum": LAG_MAX_S},
    },
}

REJECTED_VOTE = {
    "type": "object",
    "required": ["id", "reason"],
    "properties": {"id": {"type": "string"}, "reason": {"type": "string"}},
}
REJECTED_DAY = {
    "type": "object",
    "required": ["bench", "date", "reason"],
    "properties": {
        "bench": {"type": "string"},
        "date": {"type": "string"},
        "reason": {"type": "string"},
    },
}
OK = {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
RESULTS = {
    "oneOf": [
        {
            "type": "object",
            "required": ["poll", "total", "choices", "benches"],
            "properties": {
                "poll": {"type": "string"},
                "total": {"type": "integer"},
                "choices": COUNTS,
                "benches": {"type": "object", "additionalProperties": COUNTS},
                "digests": {
                    "type": "object",
                    "description": "A closed poll only: per bench, the SHA-256 (hex) of the "
                    "UTF-8 lines `<vote id>,<choice>\\n` of its counted votes sorted by id",
                    "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
            },
        },
        {
            "type": "object",
            "required": ["poll", "hidden", "closes"],
            "properties": {
                "poll": {"type": "string"},
                "hidden": {"const": True},
                "closes": {"type": "integer"},
            },
        },
    ]
}
EXAMPLE_POLL = "mostar-2026-park-lights"
HTML = {"text/html": {"schema": {"type": "string"}}}
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
OPTIONAL_BEARER: list[dict[str, list[str]]] = [{}, {"bearer": []}]


CSV = {"text/csv": {"schema": {"type": "string"}}}
POLL_QUERY = [
    {
        "name": "poll",
        "in": "query",
        "required": True,
        "schema": POLL_ID,
        "example": "mostar-2026-park-lights",
    }
]
HIDDEN_403 = {
    "description": "The poll's results are published when it closes (the admin token sees "
    "them before)",
    "content": {"application/json": {"schema": ERROR}},
}
NO_POLL_404 = {
    "description": "No poll has this id",
    "content": {"application/json": {"schema": ERROR}},
}
OPEN_DATA = (
    "Open data under CC BY 4.0: the CSV starts with `#` lines (title, licence and "
    "attribution, one line per column: `# name: what it is`), then the header row."
)


def export_op(summary: str, description: str, ok: dict[str, Any], params: Any) -> dict[str, Any]:
    out = answers({}, 400, 401)
    out["200"] = {"description": summary, "content": ok}
    return {
        "get": {
            "summary": summary,
            "description": f"{description} {OPEN_DATA}",
            "security": OPTIONAL_BEARER,
            "parameters": params,
            "responses": out,
        }
    }


def poll_export(summary: str, description: str, ok: dict[str, Any]) -> dict[str, Any]:
    op = export_op(summary, description, ok, POLL_QUERY)
    op["get"]["responses"]["403"] = HIDDEN_403
    op["get"]["responses"]["404"] = NO_POLL_404
    return op


VOTES_JSON = {
    "type": "object",
    "required": ["poll", "licence", "attribution", "columns", "votes"],
    "properties": {
        "poll": {"type": "string"},
        "licence": {"type": "string"},
        "attribution": {"type": "string"},
        "columns": {"type": "object", "additionalProperties": {"type": "string"}},
        "votes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "municipality", "bench", "minute", "choice"],
                "properties": {
                    "id": {"type": "string"},
                    "municipality": {"type": "string"},
                    "bench": {"type": "string"},
                    "minute": {"type": "string"},
                    "choice": {"type": "string"},
                },
            },
        },
    },
}
DAY_QUERY = [
    {"name": "municipality", "in": "query", "required": True, "schema": MUNICIPALITY},
    *(
        {
            "name": key,
            "in": "query",
            "required": True,
            "schema": {"type": "string", "format": "date", "pattern": _pattern(names.DATE_RE)},
            "example": day,
        }
        for key, day in (("from", "2026-12-01"), ("to", "2026-12-31"))
    ),
]


def path_param(name: str, schema: dict[str, Any], example: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": schema, "example": example}]


def page(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    lang = {"name": "lang", "in": "query", "required": False, "schema": {"type": "string"}}
    return {
        "get": {
            "summary": summary,
            "parameters": [*(params or []), lang],
            "responses": {
                "200": {"description": "The page", "content": HTML},
                "404": {"description": "No such page or bench", "content": HTML},
                "405": answers({}, 405)["405"],
                "413": answers({}, 413)["413"],
            },
        }
    }


def spec(version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "klupa portal",
            "version": version,
            "description": "The civic-feedback portal API (INTERFACES.md, 'Portal HTTP API'). "
            "A gateway writes with its municipality's token, for the benches registered to "
            "that municipality only; the admin token manages polls. Every request is one "
            "transaction. Bodies are at most 1 MiB.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Is the database there, and at which schema revision",
                    "responses": {
                        "200": {
                            "description": "Healthy",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["ok", "schema"],
                                        "properties": {
                                            "ok": {"const": True},
                                            "schema": {"type": ["string", "null"]},
                                        },
                                    }
                                }
                            },
                        },
                        "503": {
                            "description": "The database does not answer",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["ok", "error"],
                                        "properties": {
                                            "ok": {"const": False},
                                            "error": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        **{k: v for k, v in answers({}).items()},
                    },
                }
            },
            "/api/v1/polls": {
                "get": {
                    "summary": "Polls open now or opening within 7 days in a municipality",
                    "security": OPTIONAL_BEARER,
                    "parameters": [
                        {
                            "name": "municipality",
                            "in": "query",
                            "required": True,
                            "schema": MUNICIPALITY,
                        }
                    ],
                    "responses": answers(
                        {
                            200: (
                                "The polls",
                                {
                                    "type": "object",
                                    "required": ["polls"],
                                    "properties": {
                                        "polls": {"type": "array", "items": LISTED_POLL}
                                    },
                                },
                            )
                        },
                        400,
                        401,
                    ),
                },
                "post": {
                    "summary": "Create a poll (admin token)",
                    "security": BEARER,
                    "requestBody": body(NEW_POLL),
                    "responses": answers(
                        {201: ("The poll as stored", NEW_POLL)}, 400, 401, 403, 409
                    ),
                },
            },
            "/api/v1/polls/{poll_id}/results": {
                "get": {
                    "summary": "A poll's totals, per choice and per bench",
                    "description": "Hidden until it closes for a poll with results after_close "
                    "(the admin token sees them).",
                    "security": OPTIONAL_BEARER,
                    "parameters": path_param("poll_id", POLL_ID, EXAMPLE_POLL),
                    "responses": answers({200: ("Results", RESULTS)}, 401, 404),
                },
            },
            "/api/v1/votes": {
                "post": {
                    "summary": "A batch of votes of the token's municipality",
                    "description": "A known (municipality, id) is a duplicate. A vote that "
                    "cannot count (unknown poll or choice, outside the poll's window, a bench "
                    "not registered to the token's municipality: `not_your_bench`, over the "
                    "bench's hourly cap: `over_vote_cap`) is listed in `rejected`; the rest "
                    "apply.",
                    "security": BEARER,
                    "requestBody": body(
                        {
                            "type": "object",
                            "required": ["votes"],
                            "properties": {
                                "votes": {
                                    "type": "array",
                                    "maxItems": names.VOTES_PER_REQUEST,
                                    "items": VOTE,
                                }
                            },
                        }
                    ),
                    "responses": answers(
                        {
                            200: (
                                "What became of each vote",
                                {
                                    "type": "object",
                                    "required": ["accepted", "duplicates", "rejected"],
                                    "properties": {
                                        "accepted": {"type": "integer"},
                                        "duplicates": {"type": "integer"},
                                        "rejected": {"type": "array", "items": REJECTED_VOTE},
                                    },
                                },
                            )
                        },
                        400,
                        401,
                        403,
                    ),
                }
            },
            "/api/v1/bench-days": {
                "put": {
                    "summary": "Daily figures of the token's benches (upserted)",
                    "description": "A day of a bench not registered to the token's municipality "
                    "is listed in `rejected` (`not_your_bench`).",
                    "security": BEARER,
                    "requestBody": body(
                        {
                            "type": "object",
                            "required": ["days"],
                            "properties": {
                                "days": {
                                    "type": "array",
                                    "maxItems": names.DAYS_PER_REQUEST,
                                    "items": DAY,
                                }
                            },
                        }
                    ),
                    "responses": answers(
                        {
                            200: (
                                "How many days were stored, and those refused",
                                {
                                    "type": "object",
                                    "required": ["upserted", "rejected"],
                                    "properties": {
                                        "upserted": {"type": "integer"},
                                        "rejected": {"type": "array", "items": REJECTED_DAY},
                                    },
                                },
                            )
                        },
                        400,
                        401,
                        403,
                    ),
                }
            },
            "/api/v1/benches/{bench}": {
                "put": {
                    "summary": "A bench's state (a bench registered to the token's municipality)",
                    "security": BEARER,
                    "parameters": path_param("bench", BENCH, "mostar-01"),
                    "requestBody": body(BENCH_STATE),
                    "responses": answers({200: ("Stored", OK)}, 400, 401, 403),
                }
            },
            "/api/v1/gateways/{municipality}": {
                "put": {
                    "summary": "The municipality's gateway heartbeat, every 60 s",
                    "description": "While a gateway is not heard for 15 minutes, its benches "
                    "show as unknown.",
                    "security": BEARER,
                    "parameters": path_param("municipality", MUNICIPALITY, "mostar"),
                    "requestBody": body(HEARTBEAT),
                    "responses": answers({200: ("Heard", OK)}, 400, 401, 403),
                }
            },
            "/api/v1/export/votes.csv": poll_export(
                "Each counted vote of a poll (CSV)",
                "Columns id, municipality, bench, minute (UTC minute start), choice.",
                CSV,
            ),
            "/api/v1/export/votes.json": poll_export(
                "Each counted vote of a poll (JSON, with `licence` and `columns`)",
                "The same as votes.csv.",
                {"application/json": {"schema": VOTES_JSON}},
            ),
            "/api/v1/export/results.csv": poll_export(
                "A poll's totals per choice, over all benches and per bench (CSV)",
                "Rows with an empty bench are the totals; a closed poll's bench rows carry the "
                "bench's digest.",
                CSV,
            ),
            "/api/v1/export/bench-days.csv": export_op(
                "The daily figures of a municipality's benches from one date to another (CSV)",
                "Daily sums only, both dates included (none when `from` is after `to`).",
                CSV,
                DAY_QUERY,
            ),
            "/": page("The polls and their results (HTML)"),
            "/benches": page("The benches and the gateways (HTML)"),
            "/method": page("How the votes are counted: the method (HTML)"),
            "/polls/{poll_id}/method": page(
                "A poll's method, caps, exports and digests (HTML)",
                path_param("poll_id", {"type": "string"}, EXAMPLE_POLL),
            ),
            "/benches/{bench}": page(
                "A bench's last 30 days (HTML)",
                path_param("bench", {"type": "string"}, "mostar-01"),
            ),
        },
    }
