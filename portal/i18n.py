"""The pages' words in Bosnian (the default) and English, and how a visitor's language is chosen."""

from __future__ import annotations

import datetime

from portal.store import LOCAL

LANGS = ("bs", "en")
COOKIE = "lang"

WORDS: dict[str, dict[str, str]] = {
    "site": {"bs": "Pametne klupe — glas građana", "en": "Smart benches — citizens' voice"},
    "polls": {"bs": "Ankete", "en": "Polls"},
    "benches": {"bs": "Klupe", "en": "Benches"},
    "no_polls": {"bs": "Trenutno nema anketa.", "en": "There are no polls at the moment."},
    "open": {"bs": "otvorena", "en": "open"},
    "upcoming": {"bs": "uskoro", "en": "upcoming"},
    "closed": {"bs": "zatvorena", "en": "closed"},
    "opens": {"bs": "Otvara se", "en": "Opens"},
    "closes": {"bs": "Zatvara se", "en": "Closes"},
    "closed_at": {"bs": "Zatvorena", "en": "Closed"},
    "total": {"bs": "Ukupno glasova", "en": "Total votes"},
    "hidden": {
        "bs": "Rezultati se objavljuju nakon zatvaranja ankete",
        "en": "Results are published when the poll closes",
    },
    "per_bench": {"bs": "Po klupama", "en": "By bench"},
    "bench": {"bs": "Klupa", "en": "Bench"},
    "anomaly": {
        "bs": "neuobičajeno mnogo glasova danas",
        "en": "unusually many votes today",
    },
    "capped": {
        "bs": "Odbijeno preko satnog ograničenja klupe",
        "en": "Refused over the bench's hourly cap",
    },
    "online": {"bs": "na mreži", "en": "online"},
    "offline": {"bs": "van mreže", "en": "offline"},
    "unknown": {"bs": "nepoznato", "en": "unknown"},
    "since": {"bs": "od", "en": "since"},
    "battery": {"bs": "Baterija", "en": "Battery"},
    "power": {"bs": "Napajanje", "en": "Power"},
    "normal": {"bs": "normalno", "en": "normal"},
    "saver": {"bs": "štednja", "en": "saver"},
    "critical": {"bs": "kritično", "en": "critical"},
    "solar_today": {"bs": "Sunčeva energija danas", "en": "Solar energy today"},
    "phones_today": {"bs": "Napunjeni telefoni danas", "en": "Phones charged today"},
    "seat_today": {"bs": "Sati sjedenja danas", "en": "Seat hours today"},
    "firmware": {"bs": "Softver", "en": "Firmware"},
    "no_benches": {"bs": "Još nema podataka o klupama.", "en": "No bench data yet."},
    "last_30": {"bs": "Posljednjih 30 dana", "en": "Last 30 days"},
    "solar_wh": {"bs": "Sunčeva energija (Wh)", "en": "Solar energy (Wh)"},
    "charge_wh": {"bs": "Energija za punjenje (Wh)", "en": "Charging energy (Wh)"},
    "sessions": {"bs": "Punjenja telefona", "en": "Phone charging sessions"},
    "votes": {"bs": "Glasovi", "en": "Votes"},
    "uptime_pct": {"bs": "Dostupnost (%)", "en": "Uptime (%)"},
    "not_found": {"bs": "Stranica nije pronađena.", "en": "Page not found."},
    "back": {"bs": "Nazad", "en": "Back"},
    "municipality": {"bs": "Općina", "en": "Municipality"},
    "switch": {"bs": "English", "en": "Bosanski"},
    "no_data": {"bs": "nema podataka", "en": "no data"},
    "last_seen": {"bs": "Zadnji put viđena", "en": "Last seen"},
    "last_heard": {"bs": "Zadnji put čuli", "en": "Last heard"},
    "gateway_silent": {
        "bs": "gateway se ne javlja duže od 15 minuta",
        "en": "its gateway has been silent for over 15 minutes",
    },
    "gateways": {"bs": "Gatewayi općina", "en": "Municipal gateways"},
    "no_gateways": {
        "bs": "Nijedan gateway se još nije javio.",
        "en": "No gateway has reported yet.",
    },
    "heartbeat": {"bs": "Zadnji signal", "en": "Last heartbeat"},
    "lag": {"bs": "Kašnjenje prosljeđivanja", "en": "Forwarding lag"},
    "version": {"bs": "Verzija", "en": "Version"},
    "silent": {"bs": "ne javlja se", "en": "silent"},
}

# Display names of the launch municipalities (ids are ASCII-folded).
PLACE_NAMES = {
    "mostar": "Mostar",
    "jablanica": "Jablanica",
    "nevesinje": "Nevesinje",
    "zavidovici": "Zavidovići",
    "zepce": "Žepče",
    "maglaj": "Maglaj",
    "prijedor": "Prijedor",
    "novi-grad": "Novi Grad",
    "kostajnica": "Kostajnica",
    "trebinje": "Trebinje",
    "ravno": "Ravno",
    "berkovici": "Berkovići",
}

MONTHS_BS = "jan feb mar apr maj jun jul aug sep okt nov dec".split()
MONTHS_EN = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def choose(query_lang: str | None, cookie_lang: str | None) -> str:
    for lang in (query_lang, cookie_lang):
        if lang in LANGS:
            return str(lang)
    return "bs"


def words(lang: str) -> dict[str, str]:
    return {key: texts.get(lang) or texts["bs"] for key, texts in WORDS.items()}


def text_in(texts: dict[str, str], lang: str) -> str:
    """A poll's question or label in `lang`, else in Bosnian."""
    return texts.get(lang) or texts["bs"]


def place_name(municipality: str) -> str:
    return PLACE_NAMES.get(municipality, municipality.replace("-", " ").title())


def when(ts: int | None, lang: str) -> str:
    """Local (Sarajevo) date and time, the way each language writes it."""
    if ts is None:
        return "–"
    try:
        t = datetime.datetime.fromtimestamp(ts, LOCAL)
    except (ValueError, OverflowError, OSError):  # a poll may close as late as 2^53 s
        return f"{ts} (Unix s)"
    if lang == "en":
        return f"{t.day} {MONTHS_EN[t.month - 1]} {t.year}, {t:%H:%M}"
    return f"{t.day}. {MONTHS_BS[t.month - 1]} {t.year}. u {t:%H:%M}"
