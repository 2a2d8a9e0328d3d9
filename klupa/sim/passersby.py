"""The passers-by of a virtual bench: who presses the pads, and what the bench should make of
each press (a vote, or why not), worked out by the simulator on its own so that tests can hold
the firmware's votes against it."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Presses:
    """Passers-by pressing the pads: mostly one clean press, some mis-touches, a rare stuffer."""

    rng: random.Random
    queue: list[tuple[float, int, float]] = field(default_factory=list)  # (at, pad, hold_s)
    log: Path | None = None  # one JSON line per press made, for tests to compare with votes

    def maybe_visit(self, t: float, rate_per_h: float, dt: float, pads: int, options: int) -> None:
        if self.rng.random() >= rate_per_h * dt / 3600.0:
            return
        choice = 0 if self.rng.random() < 0.6 else self.rng.randrange(max(1, options))
        kind = self.rng.random()
        if kind < 0.8:
            self.queue.append((t, choice, self.rng.uniform(0.5, 0.9)))
        elif kind < 0.93:
            self.queue.append((t, self.rng.randrange(pads), 0.05))  # a brush of the hand
        else:
            for i in range(10):  # the same pad ten times
                self.queue.append((t + i * 2.0, choice, 0.6))

    def record(self, at: float, pad: int, hold: float, expect: str, option: str | None) -> None:
        if self.log is not None:
            line: dict[str, Any] = {"ts": round(at, 3), "pad": pad, "hold_s": round(hold, 3)}
            line["expect"] = expect
            if option is not None:
                line["option"] = option
            with self.log.open("a") as f:
                f.write(json.dumps(line) + "\n")


# The vote rules of the bench (docs/protocol.md, issue "touchpad voting"), as a passer-by
# meets them.
PRESS_S = (0.3, 1.5)  # a vote press is held this long, then released
CONFIRM_S = 3.0  # the confirmation screen, before the cooldown starts
MARGIN_S = 0.5  # closer than this to a rule's edge, the sim does not claim to know the outcome
HOLD_MARGIN_S = 0.15  # the same for a press's length, which the bench measures by sampling


@dataclass
class Tally:
    """What the bench should make of each press, tracked by the simulator on its own: a vote, or
    not (a brush, no such option, poll closed, confirmation + cooldown, hourly cap).

    A press within MARGIN_S of a rule's edge may go either way: the tally then follows both
    histories (the times the last vote may have been made) and calls a later press sure only
    when every history agrees on it; otherwise it is `unsure`. Reads the poll the bench keeps
    (``poll.json``) and its settings (``config.json``, then ``state.json``'s `set` values) from
    the flash folder, as they change."""

    flash: Path | None
    votes: list[tuple[float, bool]] = field(default_factory=list)  # (time, sure), last hour
    lasts: set[float | None] = field(default_factory=lambda: {None})  # the possible last votes
    poll: dict[str, Any] | None = None
    settings: dict[str, int] = field(default_factory=lambda: {"cooldown": 10, "vote_cap": 60})
    _read: float = -1e18

    def refresh(self, t: float, now: bool = False) -> None:
        if self.flash is None or (t - self._read < 30.0 and not now):
            return
        self._read = t
        self.poll = read_json(self.flash / "poll.json")
        for name in ("config.json", "state.json"):
            doc = read_json(self.flash / name) or {}
            values = doc.get("settings", {}) if name == "state.json" else doc
            for key in ("cooldown", "vote_cap"):
                if isinstance(values.get(key), int):
                    self.settings[key] = values[key]

    def options(self) -> int:
        return len(self.poll["options"]) if self.poll else 2

    def judge(self, released: float, pad: int, hold: float, ready: bool) -> tuple[str, str | None]:
        """The outcome of a press released at ``released`` (the bench's clock)."""
        self.refresh(released, now=True)  # the poll as the bench has it at this moment
        poll = self.poll
        if not ready or poll is None:
            return "closed", None
        option = poll["options"][pad]["id"] if pad < len(poll["options"]) else None
        if option is None:
            return "no_option", None
        opens, closes = int(poll["opens"]), int(poll["closes"])
        edge = min(abs(released - opens), abs(released - closes)) < MARGIN_S + 1
        if not edge and not opens <= released < closes:
            return "closed", option
        lo, hi = PRESS_S
        if hold < lo - HOLD_MARGIN_S or hold > hi + HOLD_MARGIN_S:
            return "touch", option
        maybe_press = edge or not lo + HOLD_MARGIN_S <= hold <= hi - HOLD_MARGIN_S
        # The hourly cap: the votes of the last hour (uncertain near the hour's edge, or when
        # some of them may not have been votes).
        self.votes = [v for v in self.votes if released - v[0] < 3600.0 + MARGIN_S]
        near_hour = any(abs(released - t - 3600.0) < MARGIN_S for t, _ in self.votes)
        cap = self.settings["vote_cap"]
        if sum(sure for _, sure in self.votes) >= cap and not near_hour:
            return "cap", option
        maybe_cap = near_hour or len(self.votes) >= cap
        # Confirmation + cooldown after the last vote, in each history.
        blocked = CONFIRM_S + self.settings["cooldown"]
        outcomes: set[str] = set()
        lasts: set[float | None] = set()
        for last in self.lasts:
            age = None if last is None else released - last
            if age is not None and age < blocked - MARGIN_S:
                outcomes.add("cooldown")
                lasts.add(last)
            elif age is None or age > blocked + MARGIN_S:
                outcomes.add("vote")
                lasts.add(released)
                if maybe_press or maybe_cap:
                    lasts.add(last)
            else:
                outcomes |= {"cooldown", "vote"}
                lasts |= {last, released}
        # A history whose last vote is long past blocks nothing: it is the same as no vote.
        self.lasts = {
            t if t is not None and released - t < blocked + MARGIN_S else None for t in lasts
        }
        sure = outcomes == {"vote"} and not (maybe_press or maybe_cap)
        if "vote" in outcomes:
            self.votes.append((released, sure))
        if sure:
            return "vote", option
        if outcomes == {"cooldown"}:
            return "cooldown", option
        return "unsure", option


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
