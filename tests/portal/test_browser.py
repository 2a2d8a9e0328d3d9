"""The pages in a real browser: Debian's Chromium driven by Playwright for Python.

Set KLUPA_SCREENSHOTS=DIR to keep the screenshots (docs/img/portal-*.png come from such a run).
"""

from __future__ import annotations

import datetime
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from portal import names, store
from testkit.services import need_program, services_required

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUESTION_BS = "Treba li postaviti česmu kod klupe u Mostaru?"
QUESTION_EN = "Should a drinking fountain be put next to the bench in Mostar?"


def seed(portal: Any, make_vote: Any) -> str:
    now = int(time.time())
    poll = portal.make_poll(
        ["mostar"],
        question={
            "bs": QUESTION_BS,
            "sr": "Треба ли поставити чесму код клупе?",
            "en": QUESTION_EN,
        },
        options=[
            {"id": "yes", "label": {"bs": "Da", "en": "Yes"}},
            {"id": "no", "label": {"bs": "Ne", "en": "No"}},
            {"id": "later", "label": {"bs": "Možda kasnije", "en": "Maybe later"}},
        ],
    )
    votes = [
        make_vote(poll, "mostar-05", n, ("yes", "no", "later", "yes")[n % 4]) for n in range(1, 30)
    ]
    token = portal.auth(portal.token("mostar"))
    assert portal.http.post("/api/v1/votes", json={"votes": votes}, headers=token).is_success
    status = {
        "municipality": "mostar",
        "online": True,
        "last_seen": now,
        "soc": 82.0,
        "power": "normal",
        "fw": "1.0.0",
    }
    assert portal.http.put("/api/v1/benches/mostar-05", json=status, headers=token).is_success
    # The longest firmware version and gateway version the API takes, in one unbroken word:
    # the pages must still fit 320 px.
    long_fw = {**status, "fw": "1.0.0-" + "x" * (names.FW_MAX - 6)}
    assert portal.http.put("/api/v1/benches/mostar-06", json=long_fw, headers=token).is_success
    beat = {"version": "2.0.0-" + "y" * (names.VERSION_MAX - 6), "ts": now, "lag_s": 1.5}
    assert portal.http.put("/api/v1/gateways/mostar", json=beat, headers=token).is_success
    today = datetime.datetime.fromtimestamp(now, store.LOCAL).date()
    days = [
        {
            "municipality": "mostar",
            "bench": "mostar-05",
            "date": (today - datetime.timedelta(days=n)).isoformat(),
            "solar_wh": 80.0 + (n * 37) % 90,
            "charge_wh": 20.0 + (n * 13) % 30,
            "sessions": 3 + n % 6,
            "seat_occ_s": 3600 + 600 * (n % 5),
            "touches": 10 + n,
            "votes": n % 7,
            "uptime_pct": 100.0 - (n % 3),
        }
        for n in range(30)
    ]
    assert portal.http.put("/api/v1/bench-days", json={"days": days}, headers=token).is_success
    return "mostar-05"


def check_screenshot(png: bytes) -> None:
    from PIL import Image

    assert len(png) > 5000
    image = Image.open(io.BytesIO(png))
    assert image.width >= 300 and image.height >= 300
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 20  # something was drawn, not a blank page


def test_pages_in_chromium(portal: Any, make_vote: Any, tmp_path: Path) -> None:
    chromium = need_program("chromium", "/usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    bench = seed(portal, make_vote)
    keep = os.environ.get("KLUPA_SCREENSHOTS")
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # a phone, in Bosnian (the pages follow Accept-Language)
            page = browser.new_page(viewport={"width": 412, "height": 915}, locale="bs-BA")
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))

            page.goto(portal.url + "/")
            assert QUESTION_BS in page.inner_text("body")
            assert "Треба ли поставити чесму код клупе?" in page.inner_text("body")
            front = page.screenshot(path=str(tmp_path / "portal-index.png"), full_page=False)
            check_screenshot(front)

            page.goto(portal.url + "/benches")
            assert "mostar-05" in page.inner_text("body")
            page.click(f'a[href="/benches/{bench}"]')
            page.wait_for_url(f"**/benches/{bench}")
            assert bench in page.inner_text("h1")
            assert page.locator("svg.chart").count() == 5
            bench_png = page.screenshot(path=str(tmp_path / "portal-bench.png"), full_page=True)
            check_screenshot(bench_png)

            page.click("#lang-en")
            page.wait_for_url("**lang=en")
            assert "Last 30 days" in page.inner_text("body")
            page.click("header >> text=Polls")
            page.wait_for_url(portal.url + "/")
            assert QUESTION_EN in page.inner_text("body")  # the cookie kept English
            check_screenshot(page.screenshot())
        finally:
            browser.close()
    assert problems == []
    if keep:
        for name in ("portal-index.png", "portal-bench.png"):
            shutil.copy(tmp_path / name, Path(keep) / name)


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_violations(page: Any) -> list[str]:
    """Run axe-core in the page; one line per violation and node."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: "
        "['violations']}).then(r => r.violations.map(v => v.id + ': ' + v.help + ' @ ' + "
        "v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(' | ')))",
        AXE_TAGS,
    )
    return list(found)


def test_every_page_in_every_language_passes_axe_keyboard_and_zoom(
    portal: Any, make_vote: Any, tmp_path: Path
) -> None:
    """WCAG 2.1 AA by axe-core on each page in each language (one browser session), the
    keyboard path from the skip link to the language switch, and 200 % zoom without
    sideways scrolling."""
    from portal import i18n

    chromium = need_program("chromium", "/usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not AXE.exists():
        msg = "axe-core is not installed (scripts/setup.sh runs npm ci)"
        if services_required():
            pytest.fail(msg)
        pytest.skip(msg)
    bench = seed(portal, make_vote)
    now = int(time.time())
    closed = portal.make_poll(["mostar"], opens=now - 7200, closes=now + 2)
    token = portal.auth(portal.token("mostar"))
    votes = [make_vote(closed, "mostar-06", n, "no" if n % 3 else "yes") for n in range(1, 8)]
    assert portal.http.post("/api/v1/votes", json={"votes": votes}, headers=token).is_success
    hidden = portal.make_poll(["mostar"], results="after_close")  # its card: no numbers
    upcoming = portal.make_poll(["mostar"], opens=now + 86400, closes=now + 2 * 86400)
    time.sleep(max(0.0, closed["closes"] - time.time()) + 0.2)
    pages = ["/", "/benches", f"/benches/{bench}", "/method", f"/polls/{closed['id']}/method"]
    pages += [f"/polls/{hidden['id']}/method", f"/polls/{upcoming['id']}/method", "/no-such-page"]
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # axe is injected as a script: this context lets it past the pages' CSP.
            context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            for lang in i18n.LANGS:
                for path in pages:
                    page.goto(f"{portal.url}{path}?lang={lang}")
                    assert page.get_attribute("html", "lang") == lang
                    for line in axe_violations(page):
                        problems.append(f"{lang} {path}: {line}")
                    # Charts have their data as text too.
                    charts = page.locator("svg.chart").count()
                    assert page.locator("figure table").count() >= charts, (lang, path)
            # Keyboard: the first Tab is the skip link; Tab on reaches the language switch,
            # and Enter on it changes the language.
            page.goto(f"{portal.url}/?lang=en")
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.className") == "skip"
            for _ in range(20):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.id") == "lang-sr-Cyrl":
                    break
            else:
                raise AssertionError("Tab never reached the Cyrillic switch")
            page.keyboard.press("Enter")
            page.wait_for_url("**lang=sr-Cyrl")
            assert "Анкете" in page.inner_text("h1")
            shot = tmp_path / "portal-cyrillic.png"
            check_screenshot(page.screenshot(path=str(shot), full_page=False))
            # 200 % zoom of a 1280 px window is a 640 px one; WCAG's reflow asks for 320 px.
            for width in (640, 320):
                page.set_viewport_size({"width": width, "height": 800})
                for path in pages:
                    page.goto(f"{portal.url}{path}?lang=sr-Cyrl")
                    wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    if wide > 1:
                        problems.append(f"{path} at {width} px scrolls sideways by {wide} px")
            context.close()
        finally:
            browser.close()
    assert problems == [], "\n".join(problems)
    keep = os.environ.get("KLUPA_SCREENSHOTS")
    if keep:
        shutil.copy(tmp_path / "portal-cyrillic.png", Path(keep) / "portal-cyrillic.png")
