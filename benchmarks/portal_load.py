"""Portal load: 100,000 votes in batches of 500 over HTTP, then the results API and the front page.

Starts `klupa portal serve` (SQLite in a temp dir) on a free port. Baselines, measured in the
same run: the same votes ingested in-process by `portal.store.ingest_votes` (no HTTP), and the
bare GROUP BY query behind the results. Targets (issue 6): >= 5,000 votes/s ingest, results
page under 200 ms with 100,000 votes.

    .venv/bin/python benchmarks/portal_load.py [--votes 100000] [--batch 500]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from klupa.contract import MUNICIPALITY_IDS
from klupa.services import free_port, stop_process, wait_for_http
from portal import checks, registry, store
from portal.db import open_database
from portal.tokens import create_token


def make_votes(n: int, now: int, poll: str) -> list[dict[str, Any]]:
    votes = []
    for i in range(n):
        m = MUNICIPALITY_IDS[i % 12]
        bench = f"{m}-01"
        votes.append(
            {
                "id": f"{bench}/1/{i // 12 + 1}",
                "municipality": m,
                "bench": bench,
                "poll": poll,
                "choice": ("yes", "no", "maybe")[i % 3],
                "ts": now - 9 * 86400 + (i * 7) % (9 * 86400),
            }
        )
    return votes


def by_municipality(votes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The votes by municipality: a gateway's batch is its own municipality's votes."""
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in MUNICIPALITY_IDS}
    for v in votes:
        out[v["municipality"]].append(v)
    return out


def post_poll(http: httpx.Client, admin: str, poll: dict[str, Any]) -> None:
    r = http.post("/api/v1/polls", json=poll, headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 201, r.text


def post_votes(http: httpx.Client, token: str, body: bytes) -> httpx.Response:
    """A gateway's POST of one batch of votes (JSON) with its municipality's token."""
    return http.post(
        "/api/v1/votes",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--gateways", type=int, default=4, help="concurrent clients, 2nd round")
    args = parser.parse_args()
    now = int(time.time())
    poll = {
        "v": 1,
        "id": "load-poll",
        "opens": now - 10 * 86400,
        "closes": now + 86400,
        "question": {"bs": "Da li želite više rasvjete u parku?"},
        "options": [
            {"id": "yes", "label": {"bs": "Da"}},
            {"id": "no", "label": {"bs": "Ne"}},
            {"id": "maybe", "label": {"bs": "Možda"}},
        ],
        "municipalities": list(MUNICIPALITY_IDS),
    }
    votes = make_votes(args.votes, now, "load-poll")

    with tempfile.TemporaryDirectory() as tmp:
        # Baseline: the same ingest in-process, no HTTP.
        base = open_database(str(Path(tmp) / "baseline.sqlite"))
        store.create_poll(base, checks.check_poll(poll))
        registry.import_benches(base, [(f"{m}-01", m) for m in MUNICIPALITY_IDS])
        by_place = by_municipality(votes)  # as over HTTP below
        start = time.perf_counter()
        for m, vs in by_place.items():
            for i in range(0, len(vs), args.batch):
                store.ingest_votes(base, m, checks.check_votes({"votes": vs[i : i + args.batch]}))
        base_rate = len(votes) / (time.perf_counter() - start)
        base.dispose()

        db = str(Path(tmp) / "portal.sqlite")
        engine = open_database(db)
        admin = create_token(engine, admin=True)
        registry.import_benches(engine, [(f"{m}-01", m) for m in MUNICIPALITY_IDS])
        tokens = {m: create_token(engine, m) for m in MUNICIPALITY_IDS}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(Path(tmp) / "portal.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "klupa.cli", "portal", "serve", "--db", db, "--port", str(port)],
            stdout=log,
            stderr=log,
        )
        try:
            wait_for_http(url + "/healthz", proc, "the portal", timeout=60)
            with httpx.Client(base_url=url, timeout=60) as http:
                post_poll(http, admin, poll)
                batches = [
                    (m, vs[i : i + args.batch])
                    for m, vs in by_place.items()
                    for i in range(0, len(vs), args.batch)
                ]
                bodies = [(m, json.dumps({"votes": b}).encode()) for m, b in batches]
                accepted = 0
                latencies = []
                start = time.perf_counter()
                for m, body in bodies:
                    t0 = time.perf_counter()
                    r = post_votes(http, tokens[m], body)
                    latencies.append((time.perf_counter() - t0) * 1000)
                    accepted += r.json()["accepted"]
                elapsed = time.perf_counter() - start
                assert accepted == len(votes), accepted
                rate = len(votes) / elapsed
                # Replaying every batch adds nothing.
                start = time.perf_counter()
                dups = 0
                for m, body in bodies[:20]:
                    dups += post_votes(http, tokens[m], body).json()["duplicates"]
                replay_rate = dups / (time.perf_counter() - start)

                results_ms = timed(
                    lambda: http.get("/api/v1/polls/load-poll/results").raise_for_status(), 20
                )
                total = http.get("/api/v1/polls/load-poll/results").json()["total"]
                assert total == len(votes)
                page_ms = timed(lambda: http.get("/").raise_for_status(), 20)

                # Second round: the same number of new votes from several gateways at once.
                post_poll(http, admin, {**poll, "id": "load-poll-2"})
                second = [
                    (
                        m,
                        json.dumps(
                            {
                                "votes": [
                                    {
                                        **v,
                                        "poll": "load-poll-2",
                                        "id": v["id"].replace("/1/", "/2/"),
                                    }
                                    for v in json.loads(b)["votes"]
                                ]
                            }
                        ).encode(),
                    )
                    for m, b in bodies
                ]

                def send(item: tuple[str, bytes]) -> int:
                    m, body = item
                    return int(post_votes(http, tokens[m], body).json()["accepted"])

                start = time.perf_counter()
                with ThreadPoolExecutor(max_workers=args.gateways) as pool:
                    accepted2 = sum(pool.map(send, second))
                concurrent_rate = accepted2 / (time.perf_counter() - start)
                assert accepted2 == len(votes), accepted2
            with engine.connect() as conn:
                query = text(
                    "SELECT bench, choice, count(*) FROM votes WHERE poll_id = 'load-poll'"
                    " GROUP BY bench, choice"
                )
                sql_ms = timed(lambda: conn.execute(query).all(), 20)
        finally:
            stop_process(proc, signal.SIGTERM, timeout=15)
            log.close()

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    print(f"votes: {len(votes)} in {len(bodies)} batches of <= {args.batch}")
    print(
        f"ingest over HTTP:          {rate:8.0f} votes/s  ({elapsed:.1f} s; batch p50 "
        f"{med(latencies):.0f} ms, max {max(latencies):.0f} ms)"
    )
    print(
        f"ingest in-process (base):  {base_rate:8.0f} votes/s  -> HTTP/base = {rate / base_rate:.2f}"
    )
    print(f"ingest, {args.gateways} gateways at once: {concurrent_rate:8.0f} votes/s")
    print(f"replayed batches:          {replay_rate:8.0f} duplicates/s")
    print(
        f"results API, {len(votes)} votes: p50 {med(results_ms):6.1f} ms  max {max(results_ms):6.1f} ms"
    )
    print(
        f"front page /, {len(votes)} votes: p50 {med(page_ms):6.1f} ms  max {max(page_ms):6.1f} ms"
    )
    print(
        f"bare GROUP BY (base):      p50 {med(sql_ms):6.1f} ms  -> results/base = "
        f"{med(results_ms) / med(sql_ms):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
