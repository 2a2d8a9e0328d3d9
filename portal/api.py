"""The portal's HTTP API (docs/interfaces.md, "Portal HTTP API") and the application that serves it.

Every error is `{"error": "..."}` naming what is wrong: 400 for bad input (the field named),
401 for a missing or unknown token, 403 for another municipality's data or a non-admin on an
admin route, 404, 409 for a poll id already taken, 413 for a body over 1 MiB.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from klupa import contract
from portal import checks, export, heartbeat, names, openapi, store
from portal.db import current_revision
from portal.tokens import Caller, find_caller

log = logging.getLogger("portal")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


DATABASE_DOWN = "database: unavailable; try again (a write is safe to repeat)"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BodyTooLarge(Exception):
    pass


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Gatekeeper:
    """Outermost layer: refuses bodies over 1 MiB (by Content-Length and by what actually
    arrives) and writes one JSON log line per request."""

    def __init__(self, app: ASGIApp, limit: int = names.MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 0}

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            declared = int(length) if length is not None else 0
        except ValueError:
            declared = 0
        if declared > self.limit:
            response = error(413, f"body: {declared} bytes; at most {self.limit} (1 MiB)")
            await response(scope, receive, send_logged)
        else:
            seen = {"bytes": 0}

            async def receive_bounded() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    seen["bytes"] += len(message.get("body", b""))
                    if seen["bytes"] > self.limit:
                        raise BodyTooLarge()
                return message

            await self.app(scope, receive_bounded, send_logged)
        log.info(
            "request",
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "status": status["code"],
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "Authorization: expected `Bearer <token>`")
    return value.strip()


async def maybe_caller(request: Request) -> Caller | None:
    """The caller of a request that may come without a token (a token sent must be valid)."""
    token = _bearer(request)
    if token is None:
        return None
    engine: Engine = request.app.state.engine
    caller = await run_in_threadpool(find_caller, engine, token)
    if caller is None:
        raise ApiError(401, "Authorization: unknown or revoked token")
    return caller


async def need_caller(request: Request) -> Caller:
    caller = await maybe_caller(request)
    if caller is None:
        raise ApiError(401, "Authorization: a bearer token is required")
    return caller


def must_write(caller: Caller, municipalities: list[str]) -> str:
    """The caller's municipality; 403 unless it is every municipality named. The admin token
    manages polls and writes no votes, bench-days or bench states."""
    if caller.admin or caller.municipality is None:
        raise ApiError(
            403, "Authorization: the admin token manages polls; a municipality's token writes data"
        )
    for m in municipalities:
        if m != caller.municipality:
            raise ApiError(
                403, f"municipality: this token writes only {caller.municipality}, not {m}"
            )
    return caller.municipality


async def write_batch(
    request: Request,
    engine: Engine,
    check: Callable[[dict[str, Any]], Sequence[Any]],
    apply: Callable[[Engine, str, Any], dict[str, Any]],
) -> dict[str, Any]:
    """A gateway's batch (votes, days): checked, all of the caller's own municipality, and
    applied by `apply` in one transaction; what became of it."""
    caller = await need_caller(request)
    items = check(await json_body(request))
    municipality = must_write(caller, [item.municipality for item in items])
    return await run_in_threadpool(apply, engine, municipality, items)


async def json_body(request: Request) -> dict[str, Any]:
    return checks.parse_body(await request.body())


def checked_id(field: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    """`value` of the path or query's `field`; 400, naming the field, unless it is `what`."""
    if not pattern.fullmatch(value):
        raise checks.BadField(field, f"{value!r} is not {what}")
    return value


def query_municipality(request: Request) -> str:
    """The required `?municipality=` of a query; 400 if it is missing or no municipality id."""
    municipality = request.query_params.get("municipality")
    if not municipality:
        raise checks.BadField("municipality", "query parameter is required")
    return checked_id("municipality", municipality, contract.MUNICIPALITY_RE, "a municipality id")


async def known_poll(engine: Engine, poll_id: str) -> store.Poll:
    """The poll `poll_id`; 404 if that is no poll id or no poll has it."""
    if not contract.POLL_ID_RE.fullmatch(poll_id):
        raise ApiError(404, f"poll: {poll_id!r} is not a poll id, so no poll has it")
    try:
        return await run_in_threadpool(store.get_poll, engine, poll_id)
    except store.UnknownPoll as exc:
        raise ApiError(404, f"poll: {exc}") from exc


async def exported_poll(request: Request, engine: Engine) -> tuple[store.Poll, bool]:
    """The poll named by `?poll=`, and whether it has closed; 403 while its results are
    hidden (the admin token sees them)."""
    caller = await maybe_caller(request)
    poll_id = request.query_params.get("poll")
    if not poll_id:
        raise checks.BadField("poll", "query parameter is required")
    poll = await known_poll(engine, poll_id)
    now = int(time.time())
    if poll.hidden(now) and not (caller and caller.admin):
        raise ApiError(
            403, f"poll: results of {poll.id} are published when it closes ({poll.closes})"
        )
    return poll, now >= poll.closes


def csv_answer(body: str, name: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


def _leaf_routes(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router (the pages)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path takes (one path may have several routes)."""
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    order = ["GET", "HEAD", "POST", "PUT"]
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


def create_app(engine: Engine) -> FastAPI:
    """The API and the pages (build() puts the body limit and request log in front). Each area
    registers its routes; the order is the order they are matched in."""
    app = FastAPI(
        title="klupa portal",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        # No redirect from `/benches/` to `/benches`: Starlette's names the host the request's
        # Host header gave, so it would send a visitor wherever that header said (a 404 instead).
        redirect_slashes=False,
    )
    app.state.engine = engine
    # The routes read their bodies through portal.checks; the description says what those take.
    description = openapi.spec()
    app.openapi = lambda: description  # type: ignore[method-assign]

    _add_error_handlers(app)
    _add_health(app, engine)
    _add_gateway_routes(app, engine)
    _add_result_routes(app, engine)
    _add_admin_routes(app, engine)

    from portal.pages import router

    app.include_router(router)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as `{"error": ...}` with its status (the module says which)."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error(exc.status, exc.message, headers)

    @app.exception_handler(checks.BadField)
    async def _bad_field(_: Request, exc: checks.BadField) -> Response:
        return error(400, str(exc))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> Response:
        # The connection closed (by the client, or by the server's read deadline) before the
        # body was in: nothing was applied, and no one is left to read this answer.
        return error(400, "body: the connection closed before the whole body arrived")

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> Response:
        return error(413, f"body: larger than {names.MAX_BODY_BYTES} bytes (1 MiB)")

    @app.exception_handler(OperationalError)
    async def _database(_: Request, exc: OperationalError) -> Response:
        # Unreachable, locked past its wait, or still starting. The detail (paths, hosts,
        # driver messages) goes to the log; the client is told to send the request again,
        # which every write allows (votes by id, the rest by key; a poll created is a 409).
        log.warning("database unavailable", extra={"error": repr(exc)[:500]})
        return error(503, DATABASE_DOWN, {"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return error(400, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/api/") and exc.status_code == 404:
            from portal.pages import not_found_page

            return not_found_page(request)
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            return error(405, f"method: {request.method} is not one of {allow}", {"Allow": allow})
        return error(exc.status_code, str(exc.detail))


def _add_health(app: FastAPI, engine: Engine) -> None:
    """`/healthz`: whether the database answers, and its schema revision."""

    @app.get("/healthz")
    async def healthz() -> Response:
        def probe() -> str | None:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return current_revision(engine)

        try:
            revision = await run_in_threadpool(probe)
        except Exception as exc:  # noqa: BLE001 - a health check reports, never raises
            # The detail (paths, hosts, driver messages) goes to the log, not to the world.
            log.warning("health check: database unavailable", extra={"error": repr(exc)[:500]})
            return JSONResponse({"ok": False, "error": "database unavailable"}, status_code=503)
        return JSONResponse({"ok": True, "schema": revision})


def _add_gateway_routes(app: FastAPI, engine: Engine) -> None:
    """What a gateway reads and writes: the polls, votes, bench-days, bench states, heartbeats."""

    @app.get("/api/v1/polls")
    async def list_polls(request: Request) -> Response:
        await maybe_caller(request)
        municipality = query_municipality(request)
        found = await run_in_threadpool(store.polls_for, engine, municipality, int(time.time()))
        # `results` (live | after_close) tells the gateway which polls' per-choice figures it
        # keeps back until they close (edge_gateway/polls.py, note_hidden).
        return JSONResponse({"polls": [{**p.wire(), "results": p.results} for p in found]})

    @app.post("/api/v1/votes")
    async def post_votes(request: Request) -> Response:
        outcome = await write_batch(request, engine, checks.check_votes, store.ingest_votes)
        if outcome["rejected"]:
            log.info("votes rejected", extra={"rejected": outcome["rejected"][:20]})
        return JSONResponse(outcome)

    @app.put("/api/v1/bench-days")
    async def put_days(request: Request) -> Response:
        outcome = await write_batch(request, engine, checks.check_days, store.upsert_days)
        return JSONResponse(outcome)

    @app.put("/api/v1/benches/{bench}")
    async def put_bench(bench: str, request: Request) -> Response:
        caller = await need_caller(request)
        checked_id("bench", bench, contract.BENCH_RE, "a bench id")
        status = checks.check_bench_status(await json_body(request))
        must_write(caller, [status.municipality])
        try:
            await run_in_threadpool(store.set_bench_status, engine, bench, status)
        except store.NotYourBench as exc:
            raise ApiError(403, str(exc)) from exc
        return JSONResponse({"ok": True})

    @app.put("/api/v1/gateways/{municipality}")
    async def put_gateway(municipality: str, request: Request) -> Response:
        caller = await need_caller(request)
        checked_id("municipality", municipality, contract.MUNICIPALITY_RE, "a municipality id")
        beat = checks.check_heartbeat(await json_body(request))
        must_write(caller, [municipality])
        await run_in_threadpool(heartbeat.record, engine, municipality, beat)
        return JSONResponse({"ok": True})


def _add_result_routes(app: FastAPI, engine: Engine) -> None:
    """What anyone reads: a poll's results and the open-data exports."""

    @app.get("/api/v1/polls/{poll_id}/results")
    async def poll_results(poll_id: str, request: Request) -> Response:
        caller = await maybe_caller(request)
        poll = await known_poll(engine, poll_id)
        now = int(time.time())
        if poll.hidden(now) and not (caller and caller.admin):
            return JSONResponse({"poll": poll.id, "hidden": True, "closes": poll.closes})
        answer = await run_in_threadpool(store.results, engine, poll_id, poll)
        if now >= poll.closes:
            answer["digests"] = await run_in_threadpool(
                export.digests, engine, poll_id, answer["benches"]
            )
        return JSONResponse(answer)

    @app.get("/api/v1/export/votes.csv")
    async def export_votes_csv(request: Request) -> Response:
        poll, _ = await exported_poll(request, engine)
        rows = await run_in_threadpool(export.poll_votes, engine, poll.id)
        title = f"Counted votes of poll {poll.id}"
        return csv_answer(export.to_csv(title, export.VOTE_COLUMNS, rows), f"{poll.id}-votes.csv")

    @app.get("/api/v1/export/votes.json")
    async def export_votes_json(request: Request) -> Response:
        poll, _ = await exported_poll(request, engine)
        rows = await run_in_threadpool(export.poll_votes, engine, poll.id)
        return JSONResponse(
            {
                "poll": poll.id,
                "licence": export.LICENCE,
                "attribution": export.ATTRIBUTION,
                "columns": export.VOTE_COLUMNS,
                "votes": rows,
            }
        )

    @app.get("/api/v1/export/results.csv")
    async def export_results_csv(request: Request) -> Response:
        poll, closed = await exported_poll(request, engine)
        res = await run_in_threadpool(store.results, engine, poll.id, poll)
        digests = (
            await run_in_threadpool(export.digests, engine, poll.id, res["benches"])
            if closed
            else None
        )
        title = f"Results of poll {poll.id}"
        body = export.to_csv(title, export.RESULT_COLUMNS, export.result_rows(res, digests))
        return csv_answer(body, f"{poll.id}-results.csv")

    @app.get("/api/v1/export/bench-days.csv")
    async def export_bench_days(request: Request) -> Response:
        await maybe_caller(request)
        q = request.query_params
        municipality = query_municipality(request)
        span = []
        for key in ("from", "to"):
            value = q.get(key)
            if not value:
                raise checks.BadField(key, "query parameter is required (YYYY-MM-DD)")
            if not names.DATE_RE.fullmatch(value):
                raise checks.BadField(key, f"{value!r} is not a date (YYYY-MM-DD)")
            try:
                datetime.date.fromisoformat(value)
            except ValueError as exc:
                raise checks.BadField(key, f"{value!r} is not a date: {exc}") from exc
            span.append(value)
        rows = await run_in_threadpool(export.bench_day_rows, engine, municipality, *span)
        title = f"Daily figures of the benches of {municipality}, {span[0]} to {span[1]}"
        body = export.to_csv(title, export.DAY_COLUMNS, rows)
        return csv_answer(body, f"{municipality}-bench-days.csv")


def _add_admin_routes(app: FastAPI, engine: Engine) -> None:
    """What only the admin token does: create polls."""

    @app.post("/api/v1/polls")
    async def post_poll(request: Request) -> Response:
        caller = await need_caller(request)
        if not caller.admin:
            raise ApiError(403, "Authorization: creating a poll needs the admin token")
        spec = checks.check_poll(await json_body(request))
        try:
            poll = await run_in_threadpool(store.create_poll, engine, spec)
        except store.PollExists as exc:
            raise ApiError(409, f"id: {exc}") from exc
        log.info("poll created", extra={"poll": poll.id, "municipalities": poll.municipalities})
        body = {**poll.wire(), "municipalities": poll.municipalities, "results": poll.results}
        return JSONResponse(body, status_code=201)


def build(engine: Engine) -> ASGIApp:
    """The whole ASGI application: the API and pages behind the body limit and request log."""
    return Gatekeeper(create_app(engine))
