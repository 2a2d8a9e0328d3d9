"""The host's one copy of the contract (docs/protocol.md, version 1).

Names and their rules, the twelve municipalities, the settings a ``set`` command may change
and their ranges, the rules a Poll keeps, and the MQTT topics. Everything on the host that
checks, writes or shows one of these (the gateway, the portal, provisioning, the virtual
board, the simulator) imports it from here. A leaf: it imports nothing of ours.

The firmware ships alone, so it keeps its own copy (``bench.config``, ``bench.screens``,
``bench.pollcheck``, ``bench.protocol``, ``bench.voting``); ``tests/foundation/test_contract.py``
holds that copy equal to this one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VERSION = 1
ROOT = "klupa/v1"

# --------------------------------------------------------------------------- names

# Lengths are (shortest, longest); the patterns below say the same with their {m,n}.
MUNICIPALITY_LEN = (2, 32)
BENCH_LEN = (3, 40)
POLL_ID_LEN = (3, 64)
OPTION_ID_LEN = (1, 16)

MUNICIPALITY_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")  # ASCII-folded: zepce, novi-grad
BENCH_RE = re.compile(r"^[a-z][a-z0-9-]{2,39}$")  # by convention {municipality}-{NN}
POLL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
OPTION_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")

# The gateway's ingest connects as gateway-{m}, the command tools as ops-{m}: no bench is
# named so, and neither user is ever the other.
RESERVED_PREFIXES = ("gateway-", "ops-")


def gateway_user(municipality: str) -> str:
    """The MQTT user (and client id) of a municipality's gateway ingest."""
    return f"gateway-{municipality}"


def ops_user(municipality: str) -> str:
    """The user `klupa gateway cmd` connects as: never the gateway's own."""
    return f"ops-{municipality}"


# --------------------------------------------------------------------------- municipalities


@dataclass(frozen=True)
class Municipality:
    id: str
    name: str  # as people write it in Latin script
    cyrillic: str  # as people write it in Cyrillic
    lat: float  # the town centre, degrees north
    lon: float  # degrees east


# The twelve launch municipalities, in the project's order. Coordinates (WGS 84) of the town
# itself, from the settlement's Wikipedia infobox where it is finer than whole minutes of arc
# (Žepče: bs; Prijedor, Trebinje, Berkovići: en; Kostajnica: sr; Ravno: fr). For the others
# (Mostar, Jablanica, Nevesinje, Zavidovići, Maglaj, Novi Grad) the town-centre point the
# deployment inventory already used, which agrees with the infobox to the minute. The virtual
# board's sun and the deployment's inventory both read these; four decimals are about 10 m.
MUNICIPALITIES: dict[str, Municipality] = {
    m.id: m
    for m in (
        Municipality("mostar", "Mostar", "Мостар", 43.3438, 17.8078),
        Municipality("jablanica", "Jablanica", "Јабланица", 43.6603, 17.7617),
        Municipality("nevesinje", "Nevesinje", "Невесиње", 43.2586, 18.1136),
        Municipality("zavidovici", "Zavidovići", "Завидовићи", 44.4458, 18.1497),
        Municipality("zepce", "Žepče", "Жепче", 44.4239, 18.0365),
        Municipality("maglaj", "Maglaj", "Маглај", 44.5469, 18.0994),
        Municipality("prijedor", "Prijedor", "Приједор", 44.9808, 16.7133),
        Municipality("novi-grad", "Novi Grad", "Нови Град", 45.0472, 16.3778),
        Municipality("kostajnica", "Kostajnica", "Костајница", 45.2180, 16.5469),
        Municipality("trebinje", "Trebinje", "Требиње", 42.7120, 18.3460),
        Municipality("ravno", "Ravno", "Равно", 42.8875, 17.9656),
        Municipality("berkovici", "Berkovići", "Берковићи", 43.0947, 18.1644),
    )
}
MUNICIPALITY_IDS = tuple(MUNICIPALITIES)

# --------------------------------------------------------------------------- settings

# What a `set` command may change, and its range (docs/protocol.md, Command). The gateway refuses
# an argument outside it before sending; the bench enforces the same in bench.config.SETTABLE.
SET_RANGES: dict[str, tuple[int, int]] = {
    "period": (10, 3600),
    "sample_s": (1, 60),
    "cooldown": (0, 600),
    "vote_cap": (1, 1000),
    "saver_soc": (0, 100),
    "critical_soc": (0, 100),
}
# The SoC thresholds may be fractional; the rest are whole numbers.
SET_FRACTIONAL = ("saver_soc", "critical_soc")

# --------------------------------------------------------------------------- polls

QUESTION_MAX = 200  # characters per language
LABEL_MAX = 24  # characters per language, per option
OPTIONS_MIN = 2  # one touch pad per option
OPTIONS_MAX = 4
POLL_LANGUAGES = ("bs", "hr", "sr", "en")  # bs required, the others optional
TIME_MAX = 2**53  # opens/closes: JSON integers are exact up to here

# --------------------------------------------------------------------------- payloads

POWER_STATES = ("normal", "saver", "critical")  # Telemetry's and Status's `power`

MAX_PAYLOAD = 2048  # bytes, any bench message
MAX_POLL_PAYLOAD = 4096  # bytes, the retained Poll

# --------------------------------------------------------------------------- topics

# What a bench publishes on its own topics (and the gateway subscribes to), and what it reads.
BENCH_KINDS = ("telemetry", "event", "vote", "status", "cmd/ack")
BENCH_READS = ("cmd", "receipt")
# A municipality's own topics: klupa/v1/{m}/poll, klupa/v1/{m}/gateway.
MUNICIPALITY_KINDS = ("poll", "gateway")


def topic(municipality: str, bench: str | None, kind: str) -> str:
    """``klupa/v1/{m}/{b}/{kind}``, or ``klupa/v1/{m}/{kind}`` when ``bench`` is None."""
    if bench is None:
        return f"{ROOT}/{municipality}/{kind}"
    return f"{ROOT}/{municipality}/{bench}/{kind}"
