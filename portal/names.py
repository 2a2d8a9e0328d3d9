"""The portal's own names and limits (its API's); the protocol's names, poll rules and
municipalities (docs/protocol.md, "Names", "Poll") are :mod:`klupa.contract`'s."""

from __future__ import annotations

import re

from klupa.contract import BENCH_RE, OPTION_ID_LEN, POLL_ID_LEN

DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# A vote id: bench/boot/seq, boot and seq canonical decimal (no sign, no leading zero, ASCII),
# at most 15 digits (below 2^53, so the pattern alone says it: a boot is counted in minutes
# since 2020, a seq per boot).
VOTE_ID_RE = re.compile(rf"^({BENCH_RE.pattern[1:-1]})/([1-9][0-9]{{0,14}})/([1-9][0-9]{{0,14}})$")

# Results shown while a poll runs ("live") or only once it has closed ("after_close").
RESULTS_MODES = ("live", "after_close")

MAX_BODY_BYTES = 1024 * 1024

# What every number a client sends must fit, on SQLite and PostgreSQL alike: counts are 32-bit
# columns; times and boot/seq numbers are up to 2^53 (64-bit columns, exact in JSON doubles).
INT32_MAX = 2**31 - 1
COUNT_MAX = INT32_MAX
LAST_SEEN_MAX = INT32_MAX  # a bench state's last_seen is a 32-bit column (0001)
FW_MAX = 40
VERSION_MAX = 40
POLL_REF_MAX = POLL_ID_LEN[1]  # a vote's `poll` (at most a poll id's length)
CHOICE_REF_MAX = OPTION_ID_LEN[1]  # a vote's `choice` (at most an option id's)
VOTES_PER_REQUEST = 1000  # a gateway sends 500
DAYS_PER_REQUEST = 1000  # a gateway sends 200
LOCAL_TZ = "Europe/Sarajevo"
