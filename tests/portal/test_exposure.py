"""What the portal shows of itself (issue 18, item 7): no page links off-site whatever path it
was asked for, and /healthz names no path, host or driver message when the database is down."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from portal.api import build
from portal.db import make_engine
from testkit.services import free_port


def raw_request(portal: Any, target: str, host: str = "portal", method: str = "GET") -> str:
    """The whole answer to a request whose target and Host header are exactly as given (an
    HTTP client would normalise `//`)."""
    with socket.create_connection(("127.0.0.1", portal.port), timeout=30) as sock:
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n"
        sock.sendall(f"{head}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode("utf-8", "replace")


def raw_get(portal: Any, target: str) -> tuple[int, str]:
    head, _, body = raw_request(portal, target).partition("\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "//evil.example/benches",
        "//evil.example",
        "/\\evil.example/x",
        "//evil.example/%2e%2e",
        "/benches//evil.example",
    ],
)
def test_no_page_links_off_site_whatever_its_path(portal: Any, target: str) -> None:
    status, html = raw_get(portal, target)
    assert status in (200, 404), html[:300]
    for href in re.findall(r'(?:href|src|action)="([^"]*)"', html):
        assert not href.startswith("//"), href
        assert "evil.example" not in href, href
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", href) or href.startswith("data:"), href


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/benches/"),
        ("GET", "/method/"),
        ("GET", "/api/v1/polls/some-poll/results/"),
        ("GET", "/api/openapi.json/"),
        ("POST", "/api/v1/votes/"),
    ],
)
def test_a_trailing_slash_is_not_a_redirect_to_the_host_header(
    portal: Any, method: str, target: str
) -> None:
    """A redirect to the path without its slash would name the host the request's Host header
    gave: a link off-site (or a poisoned cache) from the portal's own answer."""
    answer = raw_request(portal, target, host="evil.example", method=method)
    head = answer.partition("\r\n\r\n")[0].lower()
    assert head.split()[1] == "404", answer[:300]
    assert "location:" not in head and "evil.example" not in answer, answer[:300]


def test_the_language_switch_stays_on_the_same_page(portal: Any) -> None:
    portal.http.cookies.clear()
    html = portal.http.get("/benches").text
    assert 'href="?lang=en"' in html


def database_down(tmp_path: Path, where: str) -> tuple[Any, str]:
    """An engine whose database cannot be reached, and a word of its address that no answer
    may show."""
    if where == "sqlite":
        folder = tmp_path / "secret-folder"
        folder.mkdir()
        engine = make_engine(str(folder / "portal.sqlite"))
        shutil.rmtree(folder)
        return engine, "secret-folder"
    pytest.importorskip("psycopg")
    port = free_port()  # nothing listens there
    return make_engine(f"postgresql://klupa:hunter2@127.0.0.1:{port}/secretdb"), str(port)


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_healthz_says_the_database_is_down_without_its_details(tmp_path: Path, where: str) -> None:
    engine, secret = database_down(tmp_path, where)
    with TestClient(build(engine)) as client:  # type: ignore[arg-type]
        r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"ok": False, "error": "database unavailable"}
    assert secret not in r.text and "hunter2" not in r.text


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_a_request_while_the_database_is_down_is_a_json_503_not_a_500(
    tmp_path: Path, where: str
) -> None:
    """The database unreachable, locked past its wait or still starting: the API's answer is
    its usual `{"error": ...}`, 503 with Retry-After (a gateway sends the batch again), and
    names no path, host or driver message."""
    engine, secret = database_down(tmp_path, where)
    requests = [
        ("GET", "/api/v1/polls?municipality=mostar", None),
        ("GET", "/api/v1/polls/some-poll/results", None),
        ("POST", "/api/v1/votes", "klp_any"),  # the token is looked up first
        ("GET", "/", None),
    ]
    with TestClient(build(engine), raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        for method, path, token in requests:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = client.request(method, path, json={"votes": []}, headers=headers)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["retry-after"] == "5"
            assert r.json() == {
                "error": "database: unavailable; try again (a write is safe to repeat)"
            }
            assert secret not in r.text and "hunter2" not in r.text
