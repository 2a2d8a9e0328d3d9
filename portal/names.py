"""The protocol's names and poll limits, as the portal checks them (PROTOCOL.md, "Names", "Poll")."""

from __future__ import annotations

import re

MUNICIPALITY_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
BENCH_RE = re.compile(r"^[a-z][a-z0-9-]{2,39}$")
POLL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
OPTION_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

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
LOCAL_TZ = "Europe/Sarajevo"
