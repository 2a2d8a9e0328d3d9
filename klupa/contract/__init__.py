"""The host's one copy of the contract (docs/protocol.md, version 1).

Names and their rules, the twelve municipalities, the settings a ``set`` command may change
and their ranges, the rules a Poll keeps, and the MQTT topics. Everything on the host that
checks, writes or shows one of these (the gateway, the portal, provisioning, the virtual
board, the simulator) imports it from here. The data (the municipalities, the settings and
their ranges) is in ``contract.toml`` beside it, read and checked once as this module is imported.
A leaf: it imports nothing of ours outside this package, whose ``datafile`` reads that file.

The firmware ships alone, so it keeps its own copy (``bench.config``, ``bench.screens``,
``bench.pollcheck``, ``bench.protocol``, ``bench.voting``); ``tests/foundation/test_contract.py``
holds that copy equal to this one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from klupa.contract.datafile import DataFile

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

# The twelve launch municipalities are in contract.toml, in the project's order, with where
# their coordinates come from; so are the settings below.
_DATA = DataFile.read("klupa.contract", "contract.toml")

# The entities a municipality lies in: the Federation of Bosnia and Herzegovina, Republika Srpska.
ENTITIES = ("FBiH", "RS")


@dataclass(frozen=True)
class Municipality:
    id: str
    name: str  # as people write it in Latin script
    cyrillic: str  # as people write it in Cyrillic
    lat: float  # the town centre, degrees north
    lon: float  # degrees east
    entity: str  # one of ENTITIES


def _municipalities(data: DataFile) -> dict[str, Municipality]:
    found: dict[str, Municipality] = {}
    for i, m in enumerate(data.rows(Municipality, "municipalities")):
        where = f"municipalities[{i}]"
        if not MUNICIPALITY_RE.fullmatch(m.id) or m.id in found:
            raise data.fail(f"{where}.id", f"{m.id!r} is not a new municipality name")
        if m.entity not in ENTITIES:
            raise data.fail(f"{where}.entity", f"{m.entity!r} is not one of {ENTITIES}")
        found[m.id] = m
    return found


MUNICIPALITIES: dict[str, Municipality] = _municipalities(_DATA)
MUNICIPALITY_IDS = tuple(MUNICIPALITIES)

# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class _Setting:
    min: int
    max: int
    fractional: bool = False  # the SoC thresholds may be fractional; the rest are whole numbers


def _settings(data: DataFile) -> dict[str, _Setting]:
    found = data.table(_Setting, "settable")
    for key, s in found.items():
        if s.min > s.max:
            raise data.fail(f"settable.{key}", f"min {s.min} is above max {s.max}")
    return found


# What a `set` command may change, and its range (docs/protocol.md, Command). The gateway refuses
# an argument outside it before sending; the bench enforces the same in bench.config.SETTABLE.
_SETTINGS = _settings(_DATA)
SET_RANGES: dict[str, tuple[int, int]] = {k: (s.min, s.max) for k, s in _SETTINGS.items()}
SET_FRACTIONAL = tuple(k for k, s in _SETTINGS.items() if s.fractional)

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
