"""The portal's OpenAPI description (`/api/openapi.json`): its operations, over the schemas of
portal.schemas.

The routes read their bodies themselves (portal.checks), so FastAPI cannot infer them; this
module states every request constraint the checks enforce (portal.schemas) and every status each
operation answers, so that a schema-driven client (schemathesis in tests/portal/test_openapi.py)
finds a request the schema allows accepted, one it forbids refused, and every answer documented.
"""

from __future__ import annotations

from typing import Any

from portal import names
from portal.schemas import (
    BENCH,
    BENCH_STATE,
    DATE,
    DAY,
    DAYS_OUTCOME,
    ERROR,
    HEARTBEAT,
    LISTED_POLL,
    MUNICIPALITY,
    NEW_POLL,
    OK,
    POLL_ID,
    RESULTS,
    STRING,
    VOTE,
    VOTES_JSON,
    VOTES_OUTCOME,
    Schema,
    batch,
    obj,
)

WHY = {
    400: 'A bad field: `{"error": "field: problem"}` names it',
    401: "No token, or an unknown or revoked one",
    403: "The token may not do this: another municipality's data, a bench not registered to "
    "it, or the admin token writing data (the admin token manages polls only)",
    404: "No such path or id",
    405: "The path does not take this method (the `Allow` header lists those it takes)",
    409: "A poll with this id exists",
    413: "The body is over 1 MiB",
    503: "The database does not answer: send the request again after `Retry-After` seconds "
    "(every write may be repeated: votes count by id, the rest by key)",
}


def error_answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def answers(ok: dict[int, tuple[str, Schema]], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        str(code): {"description": what, "content": {"application/json": {"schema": schema}}}
        for code, (what, schema) in ok.items()
    }
    for code in sorted({*errors, 405, 413, 503} - set(ok)):
        entry = error_answer(WHY[code])
        if code == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": STRING}}
        if code == 405:
            entry["headers"] = {"Allow": {"schema": STRING}}
        if code == 503:
            entry["headers"] = {"Retry-After": {"schema": STRING}}
        out[str(code)] = entry
    return out


def body(schema: Schema) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def query(name: str, schema: Schema, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": True, "schema": schema, **extra}


EXAMPLE_POLL = "mostar-2026-park-lights"
HTML = {"text/html": {"schema": STRING}}
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
OPTIONAL_BEARER: list[dict[str, list[str]]] = [{}, {"bearer": []}]


CSV = {"text/csv": {"schema": STRING}}
POLL_QUERY = [query("poll", POLL_ID, example=EXAMPLE_POLL)]
HIDDEN_403 = error_answer(
    "The poll's results are published when it closes (the admin token sees them before)"
)
NO_POLL_404 = error_answer("No poll has this id")
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


# The open-data exports of one poll: file name, content, summary, what the description adds.
POLL_EXPORTS = [
    (
        "votes.csv",
        CSV,
        "Each counted vote of a poll (CSV)",
        "Columns id, municipality, bench, minute (UTC minute start), choice.",
    ),
    (
        "votes.json",
        {"application/json": {"schema": VOTES_JSON}},
        "Each counted vote of a poll (JSON, with `licence` and `columns`)",
        "The same as votes.csv.",
    ),
    (
        "results.csv",
        CSV,
        "A poll's totals per choice, over all benches and per bench (CSV)",
        "Rows with an empty bench are the totals; a closed poll's bench rows carry the "
        "bench's digest.",
    ),
]


def poll_export(summary: str, description: str, ok: dict[str, Any]) -> dict[str, Any]:
    op = export_op(summary, description, ok, POLL_QUERY)
    op["get"]["responses"]["403"] = HIDDEN_403
    op["get"]["responses"]["404"] = NO_POLL_404
    return op


DAY_QUERY = [
    query("municipality", MUNICIPALITY),
    query("from", DATE, example="2026-12-01"),
    query("to", DATE, example="2026-12-31"),
]


def path_param(name: str, schema: dict[str, Any], example: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": schema, "example": example}]


def page(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    lang = {"name": "lang", "in": "query", "required": False, "schema": STRING}
    return {
        "get": {
            "summary": summary,
            "parameters": [*(params or []), lang],
            "responses": {
                "200": {"description": "The page", "content": HTML},
                "404": {"description": "No such page or bench", "content": HTML},
                **{code: answers({})[code] for code in ("405", "413", "503")},
            },
        }
    }


def health() -> dict[str, Any]:
    up = obj({"ok": {"const": True}, "schema": {"type": ["string", "null"]}})
    down = obj({"ok": {"const": False}, "error": STRING})
    responses = answers({200: ("Healthy", up), 503: ("The database does not answer", down)})
    return {
        "/healthz": {
            "get": {
                "summary": "Is the database there, and at which schema revision",
                "responses": responses,
            }
        }
    }


def polls() -> dict[str, Any]:
    listed = obj({"polls": {"type": "array", "items": LISTED_POLL}})
    return {
        "/api/v1/polls": {
            "get": {
                "summary": "Polls open now or opening within 7 days in a municipality",
                "security": OPTIONAL_BEARER,
                "parameters": [query("municipality", MUNICIPALITY)],
                "responses": answers({200: ("The polls", listed)}, 400, 401),
            },
            "post": {
                "summary": "Create a poll (admin token)",
                "security": BEARER,
                "requestBody": body(NEW_POLL),
                "responses": answers({201: ("The poll as stored", NEW_POLL)}, 400, 401, 403, 409),
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
    }


def write(
    summary: str,
    request: Schema,
    answer: tuple[str, Schema],
    description: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An operation by which a gateway writes with its municipality's token."""
    op: dict[str, Any] = {"summary": summary}
    if description:
        op["description"] = description
    op["security"] = BEARER
    if parameters:
        op["parameters"] = parameters
    op["requestBody"] = body(request)
    op["responses"] = answers({200: answer}, 400, 401, 403)
    return op


# What becomes of a write that cannot count, said with its operation.
VOTES_REJECTED = (
    "A known (municipality, id) is a duplicate. A vote that cannot count (unknown poll or choice, "
    "outside the poll's window, a bench not registered to the token's municipality: "
    "`not_your_bench`, over the bench's hourly cap: `over_vote_cap`) is listed in `rejected`; "
    "the rest apply."
)
DAYS_REJECTED = (
    "A day of a bench not registered to the token's municipality is listed in `rejected` "
    "(`not_your_bench`)."
)
GATEWAY_SILENT = "While a gateway is not heard for 15 minutes, its benches show as unknown."


def writes() -> dict[str, Any]:
    votes = batch("votes", names.VOTES_PER_REQUEST, VOTE)
    days = batch("days", names.DAYS_PER_REQUEST, DAY)
    return {
        "/api/v1/votes": {
            "post": write(
                "A batch of votes of the token's municipality",
                votes,
                ("What became of each vote", VOTES_OUTCOME),
                VOTES_REJECTED,
            )
        },
        "/api/v1/bench-days": {
            "put": write(
                "Daily figures of the token's benches (upserted)",
                days,
                ("How many days were stored, and those refused", DAYS_OUTCOME),
                DAYS_REJECTED,
            )
        },
        "/api/v1/benches/{bench}": {
            "put": write(
                "A bench's state (a bench registered to the token's municipality)",
                BENCH_STATE,
                ("Stored", OK),
                parameters=path_param("bench", BENCH, "mostar-01"),
            )
        },
        "/api/v1/gateways/{municipality}": {
            "put": write(
                "The municipality's gateway heartbeat, every 60 s",
                HEARTBEAT,
                ("Heard", OK),
                GATEWAY_SILENT,
                path_param("municipality", MUNICIPALITY, "mostar"),
            )
        },
    }


def exports() -> dict[str, Any]:
    out = {
        f"/api/v1/export/{name}": poll_export(summary, description, content)
        for name, content, summary, description in POLL_EXPORTS
    }
    out["/api/v1/export/bench-days.csv"] = export_op(
        "The daily figures of a municipality's benches from one date to another (CSV)",
        "Daily sums only, both dates included (none when `from` is after `to`).",
        CSV,
        DAY_QUERY,
    )
    return out


def pages() -> dict[str, Any]:
    return {
        "/": page("The polls and their results (HTML)"),
        "/benches": page("The benches and the gateways (HTML)"),
        "/method": page("How the votes are counted: the method (HTML)"),
        "/polls/{poll_id}/method": page(
            "A poll's method, caps, exports and digests (HTML)",
            path_param("poll_id", STRING, EXAMPLE_POLL),
        ),
        "/benches/{bench}": page(
            "A bench's last 30 days (HTML)",
            path_param("bench", STRING, "mostar-01"),
        ),
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
        "paths": {**health(), **polls(), **writes(), **exports(), **pages()},
    }
