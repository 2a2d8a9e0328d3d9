"""The public pages, rendered on the server with Jinja2: polls and results, the benches, a bench,
and the method (in general and per poll).

No JavaScript. In Bosnian, Croatian, Serbian (Latin and Cyrillic) and English (portal.i18n):
`?lang=…` switches and a cookie keeps the choice; else the browser's `Accept-Language`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from klupa import contract
from portal import anomaly, charts, export, heartbeat, i18n, registry, store, votecap

router = APIRouter()

templates = Environment(
    loader=PackageLoader("portal", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

# Pages carry no script; the policy says so to the browser too.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'"


def _lang(request: Request) -> tuple[str, bool]:
    """The visitor's language, and whether it was just chosen (so the cookie is set)."""
    asked = request.query_params.get("lang")
    lang = i18n.choose(
        asked, request.cookies.get(i18n.COOKIE), request.headers.get("accept-language")
    )
    return lang, asked in i18n.LANGS


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang, chosen = _lang(request)
    page = templates.get_template(name).render(
        lang=lang,
        t=i18n.words(lang),
        # Query-only: the same page in each language. Never built from the request's path,
        # which for `//host/x` would make a link to another site.
        switches=[(code, i18n.NAMES[code], f"?lang={code}") for code in i18n.LANGS],
        when=lambda ts: i18n.when(ts, lang),
        num=lambda value, decimals=0: i18n.number(value, lang, decimals),
        place=lambda m: i18n.place_name(m, lang),
        text_in=lambda texts: i18n.text_in(texts, lang),
        # ` lang="…"` when a poll's text is shown in another language than the page's
        lang_of=lambda texts: (
            Markup(f' lang="{tag}"') if (tag := i18n.text_lang(texts, lang)) != lang else ""
        ),
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["Vary"] = "Accept-Language, Cookie"
    if chosen:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


def not_found_page(request: Request) -> Response:
    return render(request, "not_found.html", status=404)


@dataclass
class PollCard:
    poll: store.Poll
    state: str  # open | upcoming | closed
    hidden: bool
    total: int
    bars: Any
    benches: list[tuple[str, dict[str, int], int, bool]]  # bench, per choice, total, flagged
    capped: dict[str, int]  # votes refused over the hourly cap, per bench
    shares: list[tuple[str, int, str]] = field(default_factory=list)  # label, votes, share %
    digests: dict[str, str] = field(default_factory=dict)  # a closed poll's, per bench


def _poll_cards(engine: Engine, lang: str, now: int) -> dict[str, list[PollCard]]:
    by_place: dict[str, list[PollCard]] = {}
    for poll in store.front_page_polls(engine, now):
        state = "upcoming" if now < poll.opens else ("open" if now < poll.closes else "closed")
        hidden = poll.hidden(now)
        total, bars, rows, capped = 0, None, [], {}
        labels: list[tuple[str, int]] = []
        digests: dict[str, str] = {}
        if not hidden and state != "upcoming":
            capped = votecap.capped_counts(engine, poll.id)
            res = store.results(engine, poll.id, poll)
            total = res["total"]
            labels = [
                (i18n.text_in(o["label"], lang), res["choices"][o["id"]]) for o in poll.options
            ]
            bars = charts.result_bars(
                labels,
                total,
                i18n.text_in(poll.question, lang),
                lambda v: i18n.number(v, lang),
            )
            flagged = store.vote_spikes(engine, res["benches"], now) if state == "open" else set()
            if state == "closed":
                digests = export.digests(engine, poll.id, res["benches"])
            rows = [
                (bench, counts, sum(counts.values()), bench in flagged)
                for bench, counts in res["benches"].items()
            ]
        shares = [
            (label, count, i18n.number(100 * count / total if total else 0, lang))
            for label, count in (labels if bars is not None else [])
        ]
        card = PollCard(poll, state, hidden, total, bars, rows, capped, shares, digests)
        for place in poll.municipalities:
            by_place.setdefault(place, []).append(card)
    order = {"open": 0, "upcoming": 1, "closed": 2}
    return {
        place: sorted(cards, key=lambda c: (order[c.state], -c.poll.opens))
        for place, cards in sorted(by_place.items(), key=lambda kv: i18n.place_name(kv[0]))
    }


@router.get("/", response_class=HTMLResponse)
async def front_page(request: Request) -> Response:
    lang, _ = _lang(request)
    now = int(time.time())
    places = await run_in_threadpool(_poll_cards, request.app.state.engine, lang, now)
    return render(request, "index.html", places=places, now=now)


@router.get("/benches", response_class=HTMLResponse)
async def benches_page(request: Request) -> Response:
    now = int(time.time())
    engine = request.app.state.engine
    rows = await run_in_threadpool(store.bench_overview, engine, now)
    reports = await run_in_threadpool(heartbeat.reports, engine)
    return render(request, "benches.html", benches=rows, gateways=reports, now=now)


SERIES = (
    ("solar_wh", "#d9a400"),
    ("charge_wh", "#2f6f9f"),
    ("sessions", "#4f9a5a"),
    ("votes", "#9b59b6"),
    ("uptime_pct", "#d9822b"),
)


@router.get("/benches/{bench}", response_class=HTMLResponse)
async def bench_page(bench: str, request: Request) -> Response:
    if not contract.BENCH_RE.fullmatch(bench):
        return not_found_page(request)
    lang, _ = _lang(request)
    now = int(time.time())
    engine = request.app.state.engine
    try:
        municipality, days = await run_in_threadpool(store.bench_history, engine, bench, now)
    except LookupError:
        return not_found_page(request)
    report = {
        (b.municipality, b.bench): b
        for b in await run_in_threadpool(store.bench_overview, engine, now)
    }.get((municipality, bench))
    words = i18n.words(lang)
    graphs = []
    for key, colour in SERIES:
        points = [(d["date"][5:], d.get(key)) for d in days]
        decimals = 0 if key == "sessions" else 1
        svg = charts.daily_bars(
            points,
            f"{bench}: {words[key]}",
            colour,
            lambda v, d=decimals: i18n.number(v, lang, d),  # type: ignore[misc]
        )
        table = [
            (i18n.when_day(d["date"], lang), i18n.number(d.get(key), lang, decimals)) for d in days
        ]
        graphs.append((key, words[key], svg, table))
    return render(
        request,
        "bench.html",
        bench=bench,
        municipality=municipality,
        report=report,
        graphs=graphs,
        now=now,
    )


@router.get("/method", response_class=HTMLResponse)
async def method_page(request: Request) -> Response:
    return render(request, "method.html", facts=method_facts(), poll=None)


def method_facts() -> dict[str, Any]:
    return {
        "cooldown": COOLDOWN_S,
        "cap": registry.DEFAULT_VOTE_CAP,
        "factor": f"{anomaly.FACTOR:g}",
        "least": anomaly.MIN_VOTES,
        "days": anomaly.MIN_HISTORY_DAYS,
    }


# The firmware's default cooldown between two votes of a bench (docs/firmware.md, `cooldown`).
COOLDOWN_S = 10


def _poll_method(engine: Engine, poll_id: str, now: int) -> dict[str, Any]:
    poll = store.get_poll(engine, poll_id)
    caps = sorted(
        (r.bench, r.vote_cap)
        for r in registry.registered(engine)
        if r.municipality in poll.municipalities and r.vote_cap is not None
    )
    closed = now >= poll.closes
    return {
        "poll": poll,
        "hidden": poll.hidden(now),
        "closed": closed,
        "caps": caps,
        "digests": (
            export.digests(engine, poll.id, store.results(engine, poll.id, poll)["benches"])
            if closed
            else {}
        ),
    }


@router.get("/polls/{poll_id}/method", response_class=HTMLResponse)
async def poll_method_page(poll_id: str, request: Request) -> Response:
    if not contract.POLL_ID_RE.fullmatch(poll_id):
        return not_found_page(request)
    try:
        info = await run_in_threadpool(
            _poll_method, request.app.state.engine, poll_id, int(time.time())
        )
    except store.UnknownPoll:
        return not_found_page(request)
    return render(request, "method.html", facts=method_facts(), **info)
