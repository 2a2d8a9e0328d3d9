"""The protocol's names and poll limits, as the portal checks them (docs/protocol.md, "Names",
"Poll")."""

from __future__ import annotations

import re

MUNICIPALITY_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
BENCH_RE = re.compile(r"^[a-z][a-z0-9-]{2,39}$")
POLL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
OPTION_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# A vote id: bench/boot/seq, boot and seq canonical decimal (no sign, no leading zero, ASCII),
# at most 15 digits (below 2^53, so the pattern alone says it: a boot is counted in minutes
# since 2020, a seq per boot).
VOTE_ID_RE = re.compile(r"^([a-z][a-z0-9-]{2,39})/([1-9][0-9]{0,14})/([1-9][0-9]{0,14})$")

PROTOCOL_VERSION = 1
LANGUAGES = ("bs", "hr", "sr", "en")  # bs required, the others optional
QUESTION_MAX = 200
LABEL_MAX = 24
OPTIONS_MIN = 2
OPTIONS_MAX = 4
POLL_MAX_BYTES = 4096  # a Poll as published, retained, to the benches
POWER_STATES = ("normal", "saver", "critical")

# Results shown while a poll runs ("live") or only once it has closed ("after_close").
RESULTS_MODES = ("live", "after_close")

MAX_BODY_BYTES = 1024 * 1024

# What every number a client sends must fit, on SQLite and PostgreSQL alike: counts are 32-bit
# columns; times and boot/seq numbers are up to 2^53 (64-bit columns, exact in JSON doubles).
INT32_MAX = 2**31 - 1
COUNT_MAX = INT32_MAX
TIME_MAX = 2**53
LAST_SEEN_MAX = INT32_MAX  # a bench state's last_seen is a 32-bit column (0001)
FW_MAX = 40
VERSION_MAX = 40
POLL_REF_MAX = 64  # a vote's `poll` (a poll id is at most 64 characters)
CHOICE_REF_MAX = 16  # a vote's `choice` (an option id is at most 16)
VOTES_PER_REQUEST = 1000  # a gateway sends 500
DAYS_PER_REQUEST = 1000  # a gateway sends 200
LOCAL_TZ = "Europe/Sarajevo"
