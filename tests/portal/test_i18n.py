"""Every language of the benches (issue 18): every word in bs, hr, sr-Latn, sr-Cyrl and en, the
language chosen by the switch, the cookie and Accept-Language, the poll's own texts in the
chosen language (else its first), and dates and numbers in each locale's form."""

from __future__ import annotations

import datetime
import html as html_module
import re
from importlib import resources
from typing import Any

import pytest

from portal import i18n, store
from tests.portal.conftest import today_for_a_minute

HEADINGS = {"bs": "Ankete", "hr": "Ankete", "sr-Latn": "Ankete", "sr-Cyrl": "Анкете", "en": "Polls"}


def get(portal: Any, path: str, **headers: str) -> str:
    portal.http.cookies.clear()
    r = portal.http.get(path, headers=headers)
    assert r.status_code == 200, r.text
    return r.text


def test_every_word_is_in_every_language() -> None:
    for key, texts in i18n.WORDS.items():
        for lang in i18n.LANGS:
            assert texts.get(lang, "").strip(), f"{key!r} has no {lang} text"
        # The Cyrillic is the Serbian Latin, letter for letter, and really Cyrillic.
        assert i18n.to_latin(texts["sr-Cyrl"]) == texts["sr-Latn"], key
        if re.search(r"[a-zčćšžđ]{3}", texts["sr-Latn"]):
            assert i18n.is_cyrillic(texts["sr-Cyrl"]), key


def test_every_word_a_template_uses_exists() -> None:
    used: set[str] = set()
    for item in resources.files("portal").joinpath("templates").iterdir():
        if item.name.endswith(".html"):
            used |= set(re.findall(r"\bt\.(\w+)", item.read_text(encoding="utf-8")))
    assert used, "no words found in the templates"
    missing = used - set(i18n.WORDS)
    assert not missing, f"templates use words with no translation: {sorted(missing)}"


def test_transliteration_and_accept_language() -> None:
    assert i18n.to_cyrillic("Ljubljana, njiva, džep, Đurđevdan") == "Љубљана, њива, џеп, Ђурђевдан"
    assert i18n.to_latin("Љубљана, њива, џеп") == "Ljubljana, njiva, džep"
    assert i18n.to_cyrillic("SHA-256 i Wi-Fi u Wh") == "SHA-256 и Wi-Fi у Wh"
    cases = {
        "sr": "sr-Cyrl",
        "sr-Latn-BA": "sr-Latn",
        "sr-Cyrl-RS": "sr-Cyrl",
        "hr-HR,hr;q=0.9,en;q=0.8": "hr",
        "de-DE,en;q=0.5,bs;q=0.7": "bs",
        "fr, en-GB;q=0.3": "en",
        "de": None,
        "en;q=0, hr;q=0.1": "hr",
    }
    for header, lang in cases.items():
        assert i18n.from_accept_language(header) == lang, header
    assert i18n.choose(None, None, "de") == "bs"
    assert i18n.choose(None, "hr", "en") == "hr"
    assert i18n.choose("sr-Cyrl", "hr", "en") == "sr-Cyrl"


def test_dates_and_numbers_in_each_locale() -> None:
    ts = int(datetime.datetime(2026, 12, 7, 8, 15, tzinfo=store.LOCAL).timestamp())
    assert i18n.when(ts, "bs") == "7. 12. 2026. u 08:15"
    assert i18n.when(ts, "sr-Cyrl") == "7. 12. 2026. у 08:15"
    assert i18n.when(ts, "en") == "7 Dec 2026, 08:15"
    assert i18n.number(1234, "hr") == "1.234" and i18n.number(1234, "en") == "1,234"
    assert i18n.number(1234.56, "sr-Latn", 1) == "1.234,6"
    assert i18n.number(1234.56, "en", 1) == "1,234.6"
    assert i18n.when_day("2026-12-07", "bs") == "7. 12. 2026."


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_each_page_in_each_language(portal: Any, lang: str) -> None:
    poll = portal.make_poll(["ravno"])
    for path in ("/", "/benches", "/method", f"/polls/{poll['id']}/method"):
        html = get(portal, f"{path}?lang={lang}")
        assert f'<html lang="{lang}">' in html
        # the switch: every language, the current one marked
        for code, name in i18n.NAMES.items():
            assert f'href="?lang={code}"' in html and f">{name}</a>" in html
        assert re.search(rf'id="lang-{lang}"\s+aria-current="true"', html), path
        words = i18n.WORDS
        assert words["polls"][lang] in html and words["method"][lang] in html
    html = get(portal, f"/?lang={lang}")
    assert f"<h1>{HEADINGS[lang]}</h1>" in html
    method = html_module.unescape(get(portal, f"/method?lang={lang}"))
    for key in ("m_press", "m_not", "m_flow", "m_licence"):
        assert i18n.WORDS[key][lang] in method
    assert "CC BY 4.0" in method and "MAC" in method


def test_language_from_accept_language_and_cookie(portal: Any) -> None:
    assert "<h1>Анкете</h1>" in get(portal, "/", **{"Accept-Language": "sr-RS,sr;q=0.9"})
    assert "<h1>Ankete</h1>" in get(portal, "/", **{"Accept-Language": "de-AT"})
    assert "<h1>Polls</h1>" in get(portal, "/", **{"Accept-Language": "en-US,en;q=0.9"})
    cookie = get(portal, "/", **{"Accept-Language": "en", "Cookie": "lang=sr-Cyrl"})
    assert "<h1>Анкете</h1>" in cookie
    r = portal.http.get("/?lang=hr")
    assert r.cookies.get("lang") == "hr" and "Accept-Language" in r.headers["vary"]
    portal.http.cookies.clear()


def test_poll_texts_in_the_chosen_language_else_the_first(portal: Any, make_vote: Any) -> None:
    question = {
        "bs": "Da li treba nova česma?",
        "hr": "Treba li nova fontana?",
        "sr": "Da li treba nova česma u Ravnom?",  # given in Latin
    }
    options = [
        {"id": "yes", "label": {"bs": "Da", "hr": "Da", "sr": "Da"}},
        {"id": "no", "label": {"bs": "Ne", "sr": "Не"}},  # Serbian given in Cyrillic
    ]
    poll = portal.make_poll(["ravno"], question=question, options=options)
    token = portal.auth(portal.token("ravno"))
    votes = [make_vote(poll, "ravno-02", n, "yes" if n % 2 else "no") for n in range(1, 6)]
    assert portal.http.post("/api/v1/votes", json={"votes": votes}, headers=token).is_success

    def card(lang: str) -> str:
        html = get(portal, f"/?lang={lang}")
        found = re.search(rf'id="ravno--{poll["id"]}">(.*?)</article>', html, re.S)
        assert found
        return found.group(1)

    assert "Treba li nova fontana?" in card("hr")
    cyr = card("sr-Cyrl")
    assert "Да ли треба нова чесма у Равном?" in cyr and ">Не<" in cyr and ">Да<" in cyr
    lat = card("sr-Latn")
    assert "Da li treba nova česma u Ravnom?" in lat and ">Ne<" in lat
    en = card("en")
    assert "Da li treba nova česma?" in en  # no English: the poll's first language,
    assert '<h3 lang="bs">Da li treba nova česma?</h3>' in en  # marked as such (WCAG 3.1.2)
    assert "<h3>Treba li nova fontana?</h3>" in card("hr")  # the page's own: no mark
    assert ' lang="' not in lat  # the Serbian texts, transliterated, are the page's own
    assert "Равно" in get(portal, "/?lang=sr-Cyrl")  # the place name too


def test_numbers_on_the_pages_in_each_locale(portal: Any) -> None:
    token = portal.auth(portal.token("berkovici"))
    now = today_for_a_minute()  # the benches page's today is the day's date
    today = datetime.datetime.fromtimestamp(now, store.LOCAL).date().isoformat()
    day = {
        "municipality": "berkovici",
        "bench": "berkovici-03",
        "date": today,
        "solar_wh": 1234.5,
        "charge_wh": 1.0,
        "sessions": 2345,
        "seat_occ_s": 5400,
        "touches": 1,
        "votes": 0,
        "uptime_pct": 100.0,
    }
    assert portal.http.put("/api/v1/bench-days", json={"days": [day]}, headers=token).is_success
    for lang, solar, sessions in (("bs", "1.234,5 Wh", "2.345"), ("en", "1,234.5 Wh", "2,345")):
        html = get(portal, f"/benches?lang={lang}")
        card = re.search(r'id="bench-berkovici-03">(.*?)</article>', html, re.S)
        assert card and solar in card.group(1) and f"<dd>{sessions}</dd>" in card.group(1)
    bench = get(portal, "/benches/berkovici-03?lang=hr")
    d = datetime.date.fromisoformat(today)
    assert f'<td>{d.day}. {d.month}. {d.year}.</td><td class="n">1.234,5</td>' in bench
