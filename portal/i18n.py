"""The pages' words in every language of the benches, and how a visitor's language is chosen.

Languages: Bosnian (`bs`, the default), Croatian (`hr`), Serbian in Latin (`sr-Latn`) and in
Cyrillic (`sr-Cyrl`) script, and English (`en`). Serbian is ijekavian, as written in Bosnia and
Herzegovina (`vrijeme`, `poslije`), like the polls' own Serbian texts. Each word is written in bs,
hr, sr-Latn and en, in portal/words/*.toml (one file per area of the pages); the Cyrillic is the
Serbian Latin transliterated (`to_cyrillic`: one to one, the digraphs lj, nj and dž included), so
the two scripts never drift apart. `tests/portal/test_i18n.py` fails on a key missing or blank in
any language.

A visitor's language: `?lang=` (then kept in a cookie), else the cookie, else the first
`Accept-Language` entry we speak (plain `sr` is Cyrillic, `sr-Latn`/`sh` Latin), else Bosnian.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from importlib import resources

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

# The words are data: portal/words/<area>.toml, a table per key with its bs, hr, sr-Latn and en.
AREAS = ("pages", "method")
WRITTEN = ("bs", "hr", "sr-Latn", "en")


def _written(area: str) -> dict[str, dict[str, str]]:
    """An area's words as written (every key in every language of WRITTEN, no other)."""
    source = resources.files("portal") / "words" / f"{area}.toml"
    table = tomllib.loads(source.read_text(encoding="utf-8"))
    for key, texts in table.items():
        if sorted(texts) != sorted(WRITTEN):
            raise ValueError(f"{source.name} [{key}]: has {sorted(texts)}, needs {list(WRITTEN)}")
    return table


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
        "bs": texts["bs"],
        "hr": texts["hr"],
        "sr-Latn": texts["sr-Latn"],
        "sr-Cyrl": to_cyrillic(texts["sr-Latn"]),
        "en": texts["en"],
    }
    for area in AREAS
    for key, texts in _written(area).items()
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
