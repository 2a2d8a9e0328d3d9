"""The API says what it does (issue 18): schemathesis drives the served portal (`klupa portal
serve`) from its own `/api/openapi.json`, with every check and a municipality's token, and finds
nothing: every schema-valid request is accepted (or refused only for authority), every invalid
one is refused, every answer and its body is documented, undeclared methods get 405 + Allow."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.portal.conftest import RunningPortal, serving

# Enough for each operation's examples, coverage cases and fuzzing; about 20 s on 2 cores.
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fresh_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPortal]:
    """A portal of its own: schemathesis writes what it likes for its municipality."""
    with serving(tmp_path_factory.mktemp("portal-openapi")) as running:
        yield running


def test_schemathesis_finds_nothing_with_every_check(fresh_portal: RunningPortal) -> None:
    portal = fresh_portal
    portal.make_poll(["mostar"], id="mostar-2026-park-lights")  # the description's example
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{portal.url}/api/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {portal.token('mostar')}",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=portal.workdir,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-6000:]
    assert "Tested: 17" in report, report[-3000:]
    for phase in ("Examples", "Coverage", "Fuzzing"):
        assert f"✅ {phase}" in report, report[-3000:]


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/v1/votes", "POST"),
        ("/api/v1/polls", "GET, POST"),
        ("/api/v1/benches/mostar-01", "PUT"),
        ("/", "GET"),
        ("/benches/mostar-01", "GET"),
    ],
)
def test_trace_and_other_undeclared_methods_are_405_with_allow(
    portal: Any, path: str, allow: str
) -> None:
    for method in ("TRACE", "DELETE", "PATCH"):
        r = portal.http.request(method, path)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allow
        assert r.json()["error"].startswith("method:")


def test_the_description_states_the_limits_the_checks_enforce(portal: Any) -> None:
    from klupa import contract
    from portal import names

    spec = portal.http.get("/api/openapi.json").json()
    vote = spec["paths"]["/api/v1/votes"]["post"]
    body = vote["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["votes"]["maxItems"] == names.VOTES_PER_REQUEST
    item = body["properties"]["votes"]["items"]["properties"]
    assert item["ts"]["maximum"] == 2**53 and item["bench"]["pattern"] == contract.BENCH_RE.pattern
    day = spec["paths"]["/api/v1/bench-days"]["put"]["requestBody"]["content"]
    assert (
        day["application/json"]["schema"]["properties"]["days"]["items"]["properties"]["touches"][
            "maximum"
        ]
        == 2**31 - 1
    )
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            assert {"405", "413"} <= set(op["responses"]), (method, path)
            if op.get("security") == [{"bearer": []}]:
                assert {"400", "401", "403"} <= set(op["responses"]), (method, path)


@pytest.mark.parametrize("version", ["\u00a0", " ", "\u3000\u2000", "\ufeff", "x\u00a0", "1.0.0"])
def test_a_blank_text_is_refused_by_the_schema_as_by_the_server(portal: Any, version: str) -> None:
    # Schemathesis found a heartbeat `version` of one no-break space: valid by the schema's
    # length, refused by the server, which strips the text first. The schema now says "not
    # blank" with the white space str.strip() takes off, so the two agree on every such text.
    import re

    spec = portal.http.get("/api/openapi.json").json()
    body = spec["paths"]["/api/v1/gateways/{municipality}"]["put"]["requestBody"]
    pattern = body["content"]["application/json"]["schema"]["properties"]["version"]["pattern"]
    beat = {"version": version, "ts": 1795712400, "lag_s": 1.0}
    r = portal.http.put(
        "/api/v1/gateways/mostar", json=beat, headers=portal.auth(portal.token("mostar"))
    )
    valid = re.fullmatch(pattern, version) is not None
    assert valid == bool(version.strip()) == (r.status_code == 200), (valid, r.text)
