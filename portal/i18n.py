"""The pages' words in every language of the benches, and how a visitor's language is chosen.

Languages: Bosnian (`bs`, the default), Croatian (`hr`), Serbian in Latin (`sr-Latn`) and in
Cyrillic (`sr-Cyrl`) script, and English (`en`). Serbian is ijekavian, as written in Bosnia and
Herzegovina (`vrijeme`, `poslije`), like the polls' own Serbian texts. Each word is written in bs, hr, sr-Latn and
en; the Cyrillic is the Serbian Latin transliterated (`to_cyrillic`: one to one, the digraphs
lj, nj and dž included), so the two scripts never drift apart. `tests/portal/test_i18n.py`
fails on a key missing or blank in any language.

A visitor's language: `?lang=` (then kept in a cookie), else the cookie, else the first
`Accept-Language` entry we speak (plain `sr` is Cyrillic, `sr-Latn`/`sh` Latin), else Bosnian.
"""

from __future__ import annotations

import datetime
import re

from klupa.contract import MUNICIPALITIES
from portal.store import LOCAL

LANGS = ("bs", "hr", "sr-Latn", "sr-Cyrl", "en")
DEFAULT = "bs"
COOKIE = "lang"
# Each language's own name, for the switch.
NAMES = {
    "bs": "Bosanski",
    "hr": "Hrvatski",
    "sr-Latn": "Srpski",
    "sr-Cyrl": "Српски",
    "en": "English",
}
# The poll text (docs/protocol.md's bs/hr/sr/en) that each page language shows.
POLL_TEXT = {"bs": "bs", "hr": "hr", "sr-Latn": "sr", "sr-Cyrl": "sr", "en": "en"}

# key: (bs, hr, sr-Latn, en)
_WORDS: dict[str, tuple[str, str, str, str]] = {
    "site": (
        "Pametne klupe — glas građana",
        "Pametne klupe — glas građana",
        "Pametne klupe — glas građana",
        "Smart benches — citizens' voice",
    ),
    "polls": ("Ankete", "Ankete", "Ankete", "Polls"),
    "benches": ("Klupe", "Klupe", "Klupe", "Benches"),
    "language": ("Jezik", "Jezik", "Jezik", "Language"),
    "menu": ("Glavni izbornik", "Glavni izbornik", "Glavni meni", "Main menu"),
    "skip": (
        "Preskoči na sadržaj",
        "Preskoči na sadržaj",
        "Preskoči na sadržaj",
        "Skip to content",
    ),
    "no_polls": (
        "Trenutno nema anketa.",
        "Trenutačno nema anketa.",
        "Trenutno nema anketa.",
        "There are no polls at the moment.",
    ),
    "open": ("otvorena", "otvorena", "otvorena", "open"),
    "upcoming": ("uskoro", "uskoro", "uskoro", "upcoming"),
    "closed": ("zatvorena", "zatvorena", "zatvorena", "closed"),
    "opens": ("Otvara se", "Otvara se", "Otvara se", "Opens"),
    "closes": ("Zatvara se", "Zatvara se", "Zatvara se", "Closes"),
    "closed_at": ("Zatvorena", "Zatvorena", "Zatvorena", "Closed"),
    "total": ("Ukupno glasova", "Ukupno glasova", "Ukupno glasova", "Total votes"),
    "hidden": (
        "Rezultati se objavljuju nakon zatvaranja ankete",
        "Rezultati se objavljuju nakon zatvaranja ankete",
        "Rezultati se objavljuju poslije zatvaranja ankete",
        "Results are published when the poll closes",
    ),
    "per_bench": ("Po klupama", "Po klupama", "Po klupama", "By bench"),
    "bench": ("Klupa", "Klupa", "Klupa", "Bench"),
    "option": ("Odgovor", "Odgovor", "Odgovor", "Answer"),
    "votes_n": ("Glasova", "Glasova", "Glasova", "Votes"),
    "share": ("Udio", "Udio", "Udio", "Share"),
    "anomaly": (
        "neuobičajeno mnogo glasova danas",
        "neuobičajeno mnogo glasova danas",
        "neuobičajeno mnogo glasova danas",
        "unusually many votes today",
    ),
    "capped": (
        "Odbijeno preko satnog ograničenja klupe",
        "Odbijeno preko satnog ograničenja klupe",
        "Odbijeno preko satnog ograničenja klupe",
        "Refused over the bench's hourly cap",
    ),
    "online": ("na mreži", "na mreži", "na mreži", "online"),
    "offline": ("van mreže", "izvan mreže", "van mreže", "offline"),
    "unknown": ("nepoznato", "nepoznato", "nepoznato", "unknown"),
    "since": ("od", "od", "od", "since"),
    "battery": ("Baterija", "Baterija", "Baterija", "Battery"),
    "power": ("Napajanje", "Napajanje", "Napajanje", "Power"),
    "normal": ("normalno", "normalno", "normalno", "normal"),
    "saver": ("štednja", "štednja", "štednja", "saver"),
    "critical": ("kritično", "kritično", "kritično", "critical"),
    "solar_today": (
        "Sunčeva energija danas",
        "Sunčeva energija danas",
        "Sunčeva energija danas",
        "Solar energy today",
    ),
    "phones_today": (
        "Napunjeni telefoni danas",
        "Napunjeni telefoni danas",
        "Napunjeni telefoni danas",
        "Phones charged today",
    ),
    "seat_today": (
        "Sati sjedenja danas",
        "Sati sjedenja danas",
        "Sati sjedenja danas",
        "Seat hours today",
    ),
    "firmware": ("Softver", "Softver", "Firmver", "Firmware"),
    "no_benches": (
        "Još nema podataka o klupama.",
        "Još nema podataka o klupama.",
        "Još nema podataka o klupama.",
        "No bench data yet.",
    ),
    "last_30": (
        "Posljednjih 30 dana",
        "Posljednjih 30 dana",
        "Posljednjih 30 dana",
        "Last 30 days",
    ),
    "solar_wh": (
        "Sunčeva energija (Wh)",
        "Sunčeva energija (Wh)",
        "Sunčeva energija (Wh)",
        "Solar energy (Wh)",
    ),
    "charge_wh": (
        "Energija za punjenje (Wh)",
        "Energija za punjenje (Wh)",
        "Energija za punjenje (Wh)",
        "Charging energy (Wh)",
    ),
    "sessions": (
        "Punjenja telefona",
        "Punjenja telefona",
        "Punjenja telefona",
        "Phone charging sessions",
    ),
    "votes": ("Glasovi", "Glasovi", "Glasovi", "Votes"),
    "uptime_pct": ("Dostupnost (%)", "Dostupnost (%)", "Dostupnost (%)", "Uptime (%)"),
    "date": ("Datum", "Datum", "Datum", "Date"),
    "value": ("Vrijednost", "Vrijednost", "Vrijednost", "Value"),
    "chart_data": (
        "Podaci grafikona kao tabela",
        "Podaci grafikona kao tablica",
        "Podaci grafikona kao tabela",
        "The chart's data as a table",
    ),
    "not_found": (
        "Stranica nije pronađena.",
        "Stranica nije pronađena.",
        "Stranica nije pronađena.",
        "Page not found.",
    ),
    "back": ("Nazad", "Natrag", "Nazad", "Back"),
    "municipality": ("Općina", "Općina", "Opština", "Municipality"),
    "no_data": ("nema podataka", "nema podataka", "nema podataka", "no data"),
    "last_seen": ("Zadnji put viđena", "Zadnji put viđena", "Posljednji put viđena", "Last seen"),
    "last_heard": ("Zadnji put čuli", "Zadnji put čuli", "Posljednji put čuli", "Last heard"),
    "gateway_silent": (
        "mrežni prolaz se ne javlja duže od 15 minuta",
        "mrežni prolaz se ne javlja dulje od 15 minuta",
        "mrežni prolaz se ne javlja duže od 15 minuta",
        "its gateway has been silent for over 15 minutes",
    ),
    "gateways": (
        "Mrežni prolazi općina",
        "Mrežni prolazi općina",
        "Mrežni prolazi opština",
        "Municipal gateways",
    ),
    "no_gateways": (
        "Nijedan mrežni prolaz se još nije javio.",
        "Nijedan mrežni prolaz se još nije javio.",
        "Nijedan mrežni prolaz se još nije javio.",
        "No gateway has reported yet.",
    ),
    "heartbeat": ("Zadnji signal", "Zadnji signal", "Posljednji signal", "Last heartbeat"),
    "lag": (
        "Kašnjenje prosljeđivanja",
        "Kašnjenje prosljeđivanja",
        "Kašnjenje prosljeđivanja",
        "Forwarding lag",
    ),
    "version": ("Verzija", "Inačica", "Verzija", "Version"),
    "silent": ("ne javlja se", "ne javlja se", "ne javlja se", "silent"),
    # --- open data and the method
    "method": ("Metoda", "Metoda", "Metod", "Method"),
    "method_title": (
        "Kako se glasovi broje",
        "Kako se glasovi broje",
        "Kako se glasovi broje",
        "How the votes are counted",
    ),
    "poll_method": (
        "Metoda ove ankete",
        "Metoda ove ankete",
        "Metod ove ankete",
        "This poll's method",
    ),
    "open_data": ("Otvoreni podaci", "Otvoreni podaci", "Otvoreni podaci", "Open data"),
    "export_votes": (
        "Svi glasovi (CSV)",
        "Svi glasovi (CSV)",
        "Svi glasovi (CSV)",
        "Every vote (CSV)",
    ),
    "export_votes_json": (
        "Svi glasovi (JSON)",
        "Svi glasovi (JSON)",
        "Svi glasovi (JSON)",
        "Every vote (JSON)",
    ),
    "export_results": (
        "Rezultati po klupama (CSV)",
        "Rezultati po klupama (CSV)",
        "Rezultati po klupama (CSV)",
        "Results by bench (CSV)",
    ),
    "digests": ("Kontrolni otisci", "Kontrolni otisci", "Kontrolni otisci", "Digests"),
    "digest_rule": (
        "Za svaku klupu: SHA-256 UTF-8 teksta u kojem je za svaki njen glas jedan red "
        "„id,odgovor” (završen znakom za novi red), redovi poredani po id-u. "
        "Izračunajte ga iz izvoza glasova i uporedite.",
        "Za svaku klupu: SHA-256 UTF-8 teksta u kojem je za svaki njezin glas jedan redak "
        "„id,odgovor” (završen znakom za novi redak), retci poredani po id-u. "
        "Izračunajte ga iz izvoza glasova i usporedite.",
        "Za svaku klupu: SHA-256 UTF-8 teksta u kojem je za svaki njen glas jedan red "
        "„id,odgovor” (završen znakom za novi red), redovi poređani po id-u. "
        "Izračunajte ga iz izvoza glasova i uporedite.",
        "For each bench: the SHA-256 of the UTF-8 text with one line 'id,choice' (ending in a "
        "newline) per counted vote, the lines sorted by id. Compute it from the votes export and "
        "compare.",
    ),
    "window": ("Anketa traje", "Anketa traje", "Anketa traje", "The poll runs"),
    "results_live": (
        "Rezultati se vide dok anketa traje.",
        "Rezultati se vide dok anketa traje.",
        "Rezultati se vide dok anketa traje.",
        "Results are shown while the poll runs.",
    ),
    "vote_caps": (
        "Satno ograničenje klupa u ovoj anketi",
        "Satno ograničenje klupa u ovoj anketi",
        "Satno ograničenje klupa u ovoj anketi",
        "The benches' hourly caps in this poll",
    ),
    "m_press_h": ("Jedan glas", "Jedan glas", "Jedan glas", "One vote"),
    "m_press": (
        "Glas je jedan pritisak (0,3 do 1,5 sekundi) na polje odgovora na dodirnoj ploči klupe "
        "dok je anketa otvorena. Klupa ga potvrdi na ekranu 3 sekunde i zapamti samo anketu, "
        "odgovor, vrijeme i svoj redni broj glasa.",
        "Glas je jedan pritisak (0,3 do 1,5 sekundi) na polje odgovora na dodirnoj ploči klupe "
        "dok je anketa otvorena. Klupa ga potvrdi na zaslonu 3 sekunde i zapamti samo anketu, "
        "odgovor, vrijeme i svoj redni broj glasa.",
        "Glas je jedan pritisak (0,3 do 1,5 sekundi) na polje odgovora na dodirnoj ploči klupe "
        "dok je anketa otvorena. Klupa ga potvrdi na ekranu 3 sekunde i zapamti samo anketu, "
        "odgovor, vrijeme i svoj redni broj glasa.",
        "A vote is one press (0.3 to 1.5 seconds) on an answer pad of the bench's touchpad while "
        "the poll is open. The bench confirms it on its screen for 3 seconds and keeps only the "
        "poll, the answer, the time and its own vote number.",
    ),
    "m_limits_h": (
        "Pauza i ograničenje",
        "Stanka i ograničenje",
        "Pauza i ograničenje",
        "Cooldown and cap",
    ),
    "m_limits": (
        "Nakon glasa klupa ne prima novi glas {cooldown} sekundi (pauza). Klupa prihvata "
        "najviše {cap} glasova na sat; portal broji od svake klupe najviše njeno satno "
        "ograničenje po anketi i satu (UTC), a višak odbija i prikazuje uz anketu.",
        "Nakon glasa klupa ne prima novi glas {cooldown} sekundi (stanka). Klupa prima "
        "najviše {cap} glasova na sat; portal broji od svake klupe najviše njezino satno "
        "ograničenje po anketi i satu (UTC), a višak odbija i prikazuje uz anketu.",
        "Poslije glasa klupa ne prima novi glas {cooldown} sekundi (pauza). Klupa prihvata "
        "najviše {cap} glasova na sat; portal broji od svake klupe najviše njeno satno "
        "ograničenje po anketi i satu (UTC), a višak odbija i prikazuje uz anketu.",
        "After a vote the bench takes no new vote for {cooldown} seconds (the cooldown). A bench "
        "takes at most {cap} votes an hour; the portal counts from each bench at most its hourly "
        "cap per poll and clock hour (UTC), refuses the excess and shows it with the poll.",
    ),
    "m_anomaly_h": ("Oznaka ⚠", "Oznaka ⚠", "Oznaka ⚠", "The ⚠ flag"),
    "m_anomaly": (
        "Klupa se označi kad danas ima najmanje {factor} puta više glasova nego njen uobičajeni "
        "dan i najmanje {least} glasova, nakon barem {days} dana vlastite historije. Klupa se "
        "poredi samo sa sobom. Oznaka ne briše glasove: poziva na provjeru.",
        "Klupa se označi kad danas ima najmanje {factor} puta više glasova nego njezin "
        "uobičajeni dan i najmanje {least} glasova, nakon barem {days} dana vlastite povijesti. "
        "Klupa se uspoređuje samo sa sobom. Oznaka ne briše glasove: poziva na provjeru.",
        "Klupa se označi kad danas ima najmanje {factor} puta više glasova nego njen uobičajeni "
        "dan i najmanje {least} glasova, poslije bar {days} dana sopstvene istorije. Klupa se "
        "poredi samo sa sobom. Oznaka ne briše glasove: poziva na provjeru.",
        "A bench is flagged when today it has at least {factor} times its usual day's votes and "
        "at least {least}, after at least {days} days of its own history. A bench is compared "
        "only with itself. The flag removes no vote: it asks for a look.",
    ),
    "m_measures_h": (
        "Šta klupa mjeri",
        "Što klupa mjeri",
        "Šta klupa mjeri",
        "What a bench measures",
    ),
    "m_measures": (
        "Sunčevu energiju, energiju i broj punjenja telefona, koliko je sjedište zauzeto, broj "
        "dodira, stanje baterije i dostupnost, te koliko je uređaja spojeno na njen Wi-Fi "
        "(samo broj; portal objavljuje samo dnevne zbirove).",
        "Sunčevu energiju, energiju i broj punjenja telefona, koliko je sjedalo zauzeto, broj "
        "dodira, stanje baterije i dostupnost te koliko je uređaja spojeno na njezin Wi-Fi "
        "(samo broj; portal objavljuje samo dnevne zbrojeve).",
        "Sunčevu energiju, energiju i broj punjenja telefona, koliko je sjedište zauzeto, broj "
        "dodira, stanje baterije i dostupnost, kao i koliko je uređaja povezano na njen Wi-Fi "
        "(samo broj; portal objavljuje samo dnevne zbirove).",
        "Solar energy, the energy and number of phone charges, how long the seat is occupied, "
        "touches, battery and uptime, and how many devices are on its Wi-Fi (a count only; the "
        "portal publishes daily sums only).",
    ),
    "m_not_h": (
        "Šta klupa ne mjeri",
        "Što klupa ne mjeri",
        "Šta klupa ne mjeri",
        "What it does not",
    ),
    "m_not": (
        "Nema kamere ni mikrofona. Klupa ne bilježi lične podatke, MAC adrese, imena ni "
        "brojeve telefona; glas se ne može povezati s osobom.",
        "Nema kamere ni mikrofona. Klupa ne bilježi osobne podatke, MAC adrese, imena ni "
        "brojeve telefona; glas se ne može povezati s osobom.",
        "Nema kamere ni mikrofona. Klupa ne bilježi lične podatke, MAC adrese, imena ni "
        "brojeve telefona; glas se ne može povezati sa osobom.",
        "No camera, no microphone. A bench records no personal data, no MAC addresses, names "
        "or phone numbers; a vote cannot be linked to a person.",
    ),
    "m_flow_h": ("Kuda idu podaci", "Kamo idu podaci", "Kuda idu podaci", "Where the data goes"),
    "m_flow": (
        "Klupa šalje podatke mrežnom prolazu svoje općine, a on ih prosljeđuje ovom portalu. "
        "Svaki glas ima svoj id, pa se ponovo poslan glas broji jednom. Općina vidi i "
        "tehničke podatke svojih klupa.",
        "Klupa šalje podatke mrežnom prolazu svoje općine, a on ih prosljeđuje ovom portalu. "
        "Svaki glas ima svoj id, pa se ponovno poslan glas broji jednom. Općina vidi i "
        "tehničke podatke svojih klupa.",
        "Klupa šalje podatke mrežnom prolazu svoje opštine, a on ih prosljeđuje ovom portalu. "
        "Svaki glas ima svoj id, pa se ponovo poslat glas broji jednom. Opština vidi i "
        "tehničke podatke svojih klupa.",
        "A bench sends its data to its municipality's gateway, which forwards it to this "
        "portal. Each vote has its own id, so a vote sent again counts once. The municipality "
        "also sees its benches' technical data.",
    ),
    "m_licence": (
        "Podaci su otvoreni, pod licencom CC BY 4.0: slobodno ih koristite uz navođenje izvora.",
        "Podaci su otvoreni, pod licencom CC BY 4.0: slobodno ih koristite uz navođenje izvora.",
        "Podaci su otvoreni, pod licencom CC BY 4.0: slobodno ih koristite uz navođenje izvora.",
        "The data is open, under CC BY 4.0: use it freely, naming the source.",
    ),
    "bench_days_export": (
        "Dnevni podaci klupa (CSV): /api/v1/export/bench-days.csv?municipality=…&from=…&to=…",
        "Dnevni podaci klupa (CSV): /api/v1/export/bench-days.csv?municipality=…&from=…&to=…",
        "Dnevni podaci klupa (CSV): /api/v1/export/bench-days.csv?municipality=…&from=…&to=…",
        "The benches' daily figures (CSV): /api/v1/export/bench-days.csv?municipality=…&from=…&to=…",
    ),
}

# Serbian Latin → Cyrillic, digraphs first.
_DIGRAPHS = {"Lj": "Љ", "LJ": "Љ", "lj": "љ", "Nj": "Њ", "NJ": "Њ", "nj": "њ"}
_DIGRAPHS |= {"Dž": "Џ", "DŽ": "Џ", "dž": "џ"}
_LETTERS = dict(
    zip(
        "abvgdđežzijklmnoprstćufhcčšABVGDĐEŽZIJKLMNOPRSTĆUFHCČŠ",
        "абвгдђежзијклмнопрстћуфхцчшАБВГДЂЕЖЗИЈКЛМНОПРСТЋУФХЦЧШ",
        strict=True,
    )
)
_TO_LATIN = {c: lat for lat, c in _LETTERS.items()} | {
    "љ": "lj",
    "Љ": "Lj",
    "њ": "nj",
    "Њ": "Nj",
    "џ": "dž",
    "Џ": "Dž",
}
# Left in Latin: codes, units, acronyms and URLs (a letter foreign to Serbian, two capitals,
# a digit, `/`, `_`, `=` or `.` inside, or a placeholder).
_KEEP = re.compile(r"[qwxyQWXY0-9/_=@]|[A-Z].*[A-Z]|\w\.\w|\{|^id\b")
_WORD = re.compile(r"[^\s„”\"'(),:;]+")


def to_cyrillic(text: str) -> str:
    """Serbian Latin to Cyrillic (codes, units and acronyms stay as they are)."""

    def word(m: re.Match[str]) -> str:
        w = m.group(0)
        if _KEEP.search(w):
            return w
        out, i = [], 0
        while i < len(w):
            pair = w[i : i + 2]
            if pair in _DIGRAPHS:
                out.append(_DIGRAPHS[pair])
                i += 2
            else:
                out.append(_LETTERS.get(w[i], w[i]))
                i += 1
        return "".join(out)

    return _WORD.sub(word, text)


def to_latin(text: str) -> str:
    return "".join(_TO_LATIN.get(c, c) for c in text)


def is_cyrillic(text: str) -> bool:
    return any("\u0400" <= c <= "\u04ff" for c in text)


WORDS: dict[str, dict[str, str]] = {
    key: {
        "bs": bs,
        "hr": hr,
        "sr-Latn": sr,
        "sr-Cyrl": to_cyrillic(sr),
        "en": en,
    }
    for key, (bs, hr, sr, en) in _WORDS.items()
}

MONTHS_EN = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
AT = {"bs": "u", "hr": "u", "sr-Latn": "u", "sr-Cyrl": "у"}


def from_accept_language(header: str | None) -> str | None:
    """The first language of an `Accept-Language` header that the pages speak."""
    if not header:
        return None
    ranked = []
    for n, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if q > 0:
            ranked.append((-q, n, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        primary = tag.split("-")[0]
        if primary == "sr":
            return "sr-Latn" if "latn" in tag.split("-") else "sr-Cyrl"
        if primary == "sh":
            return "sr-Latn"
        if primary in ("bs", "hr", "en"):
            return primary
    return None


def choose(
    query_lang: str | None, cookie_lang: str | None, accept_language: str | None = None
) -> str:
    for lang in (query_lang, cookie_lang):
        if lang in LANGS:
            return str(lang)
    return from_accept_language(accept_language) or DEFAULT


def words(lang: str) -> dict[str, str]:
    return {key: texts[lang] for key, texts in WORDS.items()}


def text_in(texts: dict[str, str], lang: str) -> str:
    """A poll's question or label in `lang` when the poll has it, else in its first language;
    Serbian in the script asked for."""
    wanted = POLL_TEXT.get(lang, "bs")
    text = texts.get(wanted) or next(iter(texts.values()), "")
    if wanted == "sr" and wanted in texts:
        return to_cyrillic(text) if lang == "sr-Cyrl" else to_latin(text)
    return text


def text_lang(texts: dict[str, str], lang: str) -> str:
    """The language tag of what `text_in` shows (for a `lang` attribute when it is not the
    page's language: WCAG 3.1.2)."""
    wanted = POLL_TEXT.get(lang, "bs")
    if texts.get(wanted):
        return lang
    first = next(iter(texts), "bs")
    if first == "sr":
        return "sr-Cyrl" if is_cyrillic(texts["sr"]) else "sr-Latn"
    return first


def place_name(municipality: str, lang: str = DEFAULT) -> str:
    """A municipality's name as people write it (klupa.contract), in `lang`'s script."""
    known = MUNICIPALITIES.get(municipality)
    if known is not None:
        return known.cyrillic if lang == "sr-Cyrl" else known.name
    name = municipality.replace("-", " ").title()
    return to_cyrillic(name) if lang == "sr-Cyrl" else name


def number(value: float | int | None, lang: str, decimals: int = 0) -> str:
    """A number the way `lang` writes it: 1,234.5 in English, 1.234,5 in the others."""
    if value is None:
        return "–"
    text = f"{value:,.{decimals}f}"
    if lang == "en":
        return text
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def when(ts: int | None, lang: str) -> str:
    """Local (Sarajevo) date and time, the way each language writes it (`7. 12. 2026. u 08:15`)."""
    if ts is None:
        return "–"
    try:
        t = datetime.datetime.fromtimestamp(ts, LOCAL)
    except (ValueError, OverflowError, OSError):  # a poll may close as late as 2^53 s
        return f"{ts} (Unix s)"
    if lang == "en":
        return f"{t.day} {MONTHS_EN[t.month - 1]} {t.year}, {t:%H:%M}"
    return f"{t.day}. {t.month}. {t.year}. {AT.get(lang, 'u')} {t:%H:%M}"


def when_day(date: str, lang: str) -> str:
    """A YYYY-MM-DD day the way `lang` writes it (`7. 12. 2026.`, `7 Dec 2026`)."""
    try:
        d = datetime.date.fromisoformat(date)
    except ValueError:
        return date
    if lang == "en":
        return f"{d.day} {MONTHS_EN[d.month - 1]} {d.year}"
    return f"{d.day}. {d.month}. {d.year}."
