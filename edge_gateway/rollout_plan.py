"""A staged rollout's plan and its saved state: the bench states, the stages, the state file.

What ``klupa gateway ota`` and ``klupa fleet ota`` parse and plan before anything is sent, and
what they save after each step (``rollout-<version>.json`` beside the store) and print as the
table. The driving loop that moves the benches through these states is ``rollout.py``'s
:class:`~edge_gateway.rollout.Rollout`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_gateway.health import BenchHealth
from edge_gateway.text import printable

# A bench's state in a rollout. Halting states stop the whole rollout.
PLANNED = "planned"  # its stage has not begun
SKIPPED = "skipped"  # already on the version
WAITING = "waiting"  # its stage began; offline, asleep or battery critical: sent on return
SENDING = "sending"  # `ota` published, its ack not yet back (download and verify take a while)
TRIAL = "trial"  # acked: rebooting into the new app, which commits once healthy
SOAKING = "soaking"  # committed; watched for the soak time
DONE = "done"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
REGRESSED = "regressed"  # committed, then a fault, a reboot, missing windows or heap collapse
STUCK = "stuck"  # online, yet neither committed nor rolled back in time
HALTING = (ROLLED_BACK, FAILED, REGRESSED, STUCK)
FINISHED = (DONE, SKIPPED)

UNITS = {"s": 1, "m": 60, "h": 3600}
STAGE_RE = re.compile(r"^(all|\d+%|\d+)$")
VERSION_FILE_RE = re.compile(r"[^A-Za-z0-9._-]")


class RolloutError(Exception):
    """The rollout cannot start or continue as asked; the message says what to do."""


# --------------------------------------------------------------------------- planning


def parse_stage(text: str) -> str:
    """``25%``, ``3`` (benches) or ``all``; raises ValueError otherwise."""
    text = text.strip().lower()
    if not STAGE_RE.fullmatch(text) or text in ("0", "0%"):
        raise ValueError(f"a stage is a percentage (25%), a number of benches (3) or all: {text!r}")
    if text.endswith("%") and int(text[:-1]) > 100:
        raise ValueError(f"a stage of more than 100 % of the rest: {text!r}")
    return text


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m`` or ``1h`` in seconds; raises ValueError otherwise."""
    text = text.strip().lower()
    try:
        if text and text[-1] in UNITS:
            value = float(text[:-1]) * UNITS[text[-1]]
        else:
            value = float(text)
    except ValueError:
        raise ValueError(f"expected a duration such as 90s or 10m: {text!r}") from None
    if value < 0:
        raise ValueError(f"a duration is not negative: {text!r}")
    return value


def plan_stages(
    canary: str,
    stages: list[str],
    benches: list[str],
    online: set[str],
    current: set[str] | None = None,
    rank: Callable[[str], Any] | None = None,
) -> list[list[str]]:
    """The benches of each stage: the canary alone, then each stage's share of those not yet
    placed (a percentage rounded up, at least one), online benches first, then by id (or in
    the order ``rank`` gives); whatever is left after the last stage joins it (so
    ``--then 25%`` alone still reaches everyone). Benches in ``current`` (already on the
    version) count for no share: they join the last stage, where they are skipped."""
    current = current or set()
    rest = sorted(
        (b for b in set(benches) if b != canary and b not in current),
        key=rank or (lambda b: (b not in online, b)),
    )
    out = [[canary]]
    for stage in stages:
        if not rest:
            break
        if stage == "all":
            n = len(rest)
        elif stage.endswith("%"):
            n = max(1, math.ceil(len(rest) * int(stage[:-1]) / 100))
        else:
            n = int(stage)
        out.append(rest[:n])
        rest = rest[n:]
    rest += sorted(b for b in set(benches) if b != canary and b in current)
    if rest:
        if len(out) == 1:
            out.append(rest)
        else:
            out[-1].extend(rest)
    return out


# --------------------------------------------------------------------------- limits, the saved state


@dataclass
class Limits:
    soak_s: float = 600.0
    ack_timeout_s: float = 180.0  # the bench acks once the bundle is downloaded and verified
    commit_timeout_s: float = 900.0  # trial: 60 s healthy, or rolled back after 10 min
    heap_ratio: float = 0.5  # a window's free heap below this share of the old median
    missing_windows: float = 3.0  # silent for this many windows (at least 3 min) in the soak


@dataclass
class BenchRun:
    """One bench's progress, as saved in the state file."""

    state: str = PLANNED
    since: float = 0.0
    stage: int = 0
    detail: str = ""
    cid: str = ""
    sent_at: float = 0.0
    after_id: int = 0  # the store's last message id when the command went out
    new_boot: int | None = None
    heap_base: int | None = None
    sends: int = 0


@dataclass
class RolloutState:
    version: str
    url: str
    sha256: str
    stages: list[list[str]]
    benches: dict[str, BenchRun] = field(default_factory=dict)
    halted: str = ""
    started: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RolloutState:
        raw = json.loads(text)
        raw["benches"] = {b: BenchRun(**r) for b, r in raw.get("benches", {}).items()}
        return cls(**raw)


def state_path(store_path: str, version: str) -> str:
    name = VERSION_FILE_RE.sub("_", version)
    return os.path.join(os.path.dirname(os.path.abspath(store_path)), f"rollout-{name}.json")


def save_state(path: str, st: RolloutState) -> None:
    write_whole(path, st.to_json())


def write_whole(path: str, text: str) -> None:
    """Write `text` to `path` through `path.part`, synced and renamed over it, so a crash leaves
    the old file or the new one, never half of one (the rollout's and the fleet's state files)."""
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state(path: str) -> RolloutState | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return RolloutState.from_json(f.read())
        except (ValueError, TypeError, KeyError) as exc:
            raise RolloutError(
                f"{path} is not a rollout state file ({exc}); move it away"
            ) from None


# --------------------------------------------------------------------------- the table


def since_text(t: float, now: float) -> str:
    """How long ago ``t`` was, as the table says it: 40 s, 4 min, 2 h."""
    s = max(0, int(now - t))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h"


def table(state: RolloutState, benches: dict[str, BenchHealth], now: float) -> str:
    """bench, stage, state, version (what the store says it runs), since, detail."""
    head = ["bench", "stage", "state", "version", "since", "detail"]
    rows = [head]
    for i, stage in enumerate(state.stages):
        for bench in stage:
            run = state.benches[bench]
            fw = printable(benches.get(bench, BenchHealth(bench)).fw or "-", 40)
            since = since_text(run.since, now) if run.since else "-"
            detail = printable(run.detail)  # an ack's or a fault's text comes from the bench
            rows.append([bench, "canary" if i == 0 else str(i), run.state, fw, since, detail])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
