"""Staged fleet updates: an app bundle to one canary bench, then to larger stages of the rest.

The guarantee: no bench is sent the bundle before every bench of the stage before it has
committed it (docs/protocol.md, "An app on trial") and stayed healthy for the soak time, and nothing
more is sent once any bench rolled it back, failed it, or regressed after committing it.
Benches offline or asleep are not waited for by later stages: each is sent the bundle when it
comes back, as long as the rollout runs. Every step is saved in a state file beside the store
(``rollout-<version>.json``), so a second run continues where the first stopped.

What it knows of the benches comes from the gateway's store, read only: the ``benches`` table
(online, sleeping, power, firmware) and the stored records (``boot``, ``ota`` and ``fault``
events, telemetry windows). Commands go out through MQTT as the ops user (a :class:`Sender`).

The plan (stages, bench states, limits) and the state file are ``rollout_plan.py``'s; their
names are this module's too, so a caller needs only ``rollout``.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge_gateway.health import BenchHealth
from edge_gateway.rollout_plan import (
    DONE,
    FAILED,
    FINISHED,
    HALTING,
    PLANNED,
    REGRESSED,
    ROLLED_BACK,
    SENDING,
    SKIPPED,
    SOAKING,
    STUCK,
    TRIAL,
    VERSION_FILE_RE,
    WAITING,
    BenchRun,
    Limits,
    RolloutError,
    RolloutState,
    load_state,
    parse_duration,
    parse_stage,
    plan_stages,
    save_state,
    since_text,
    state_path,
    table,
    write_whole,
)
from edge_gateway.store import Store

__all__ = [
    "BenchRun",
    "DONE",
    "FAILED",
    "FINISHED",
    "Fleet",
    "HALTING",
    "Limits",
    "PLANNED",
    "REGRESSED",
    "ROLLED_BACK",
    "Rec",
    "Rollout",
    "RolloutError",
    "RolloutState",
    "SENDING",
    "SKIPPED",
    "SOAKING",
    "STUCK",
    "Sender",
    "StoreFleet",
    "TRIAL",
    "VERSION_FILE_RE",
    "WAITING",
    "load_state",
    "parse_duration",
    "parse_stage",
    "plan_stages",
    "save_state",
    "since_text",
    "soak_problem",
    "state_path",
    "table",
    "write_whole",
]

# --------------------------------------------------------------------------- what the store says


@dataclass
class Rec:
    """One stored record of a bench: an event or a telemetry window."""

    id: int
    boot: int
    kind: str
    received: float
    body: dict[str, Any]


class Fleet(Protocol):
    def benches(self) -> dict[str, BenchHealth]: ...
    def last_id(self) -> int: ...
    def records(self, bench: str, after_id: int) -> list[Rec]: ...
    def heap_baseline(self, bench: str, before_id: int) -> int | None: ...


class StoreFleet:
    """The gateway's store, read only (a fresh read transaction at every query)."""

    def __init__(self, path: str) -> None:
        if not os.path.exists(path):
            raise RolloutError(f"no store at {path}: is the gateway running with this config?")
        self.store = Store(path, readonly=True)
        self.conn = self.store.conn

    def close(self) -> None:
        self.store.close()

    def benches(self) -> dict[str, BenchHealth]:
        return {row["bench"]: BenchHealth.from_row(row) for row in self.store.benches()}

    def last_id(self) -> int:
        return self.store.last_id()

    def records(self, bench: str, after_id: int) -> list[Rec]:
        cur = self.conn.execute(
            "SELECT id, boot, kind, received, body FROM messages WHERE bench = ? AND id > ? "
            "AND kind IN ('event', 'telemetry') ORDER BY id",
            (bench, after_id),
        )
        out = []
        for rid, boot, kind, received, body in cur:
            try:
                obj = json.loads(body)
            except (TypeError, ValueError):
                continue
            if isinstance(obj, dict):
                out.append(Rec(int(rid), int(boot or 0), kind, float(received), obj))
        return out

    def heap_baseline(self, bench: str, before_id: int) -> int | None:
        """The median free heap of the bench's last 10 windows before ``before_id``."""
        cur = self.conn.execute(
            "SELECT body FROM messages WHERE bench = ? AND id <= ? AND kind = 'telemetry' "
            "ORDER BY id DESC LIMIT 10",
            (bench, before_id),
        )
        heaps = []
        for (body,) in cur:
            try:
                heap = json.loads(body).get("heap")
            except (TypeError, ValueError, AttributeError):
                continue
            if isinstance(heap, int):
                heaps.append(heap)
        return int(statistics.median(heaps)) if heaps else None


class Sender(Protocol):
    def send(self, bench: str, op: str, args: dict[str, Any]) -> str: ...
    def ack(self, cid: str) -> dict[str, Any] | None: ...


# --------------------------------------------------------------------------- the rollout


@dataclass
class Rollout:
    """The stage-by-stage state machine. :meth:`step` does one round and says if it is over."""

    s: RolloutState
    fleet: Fleet
    sender: Sender
    limits: Limits
    on_change: Callable[[str, BenchRun], None] | None = None
    # Begin no stage after this one (``--upto``: a fleet rollout runs each Pi a stage at a time).
    upto: int | None = None

    def __post_init__(self) -> None:
        for i, stage in enumerate(self.s.stages):
            for b in stage:
                self.s.benches.setdefault(b, BenchRun(stage=i))

    # -- reading
    def active_stage(self) -> int:
        """The first stage not yet complete: the canary's needs it done; a later stage needs
        each bench done, skipped, or waiting for its return."""
        for i, stage in enumerate(self.s.stages):
            ok = (DONE, SKIPPED) if i == 0 else (DONE, SKIPPED, WAITING)
            if not all(self.s.benches[b].state in ok for b in stage):
                return i
        return len(self.s.stages)

    def last_stage(self) -> int:
        """The last stage this run may begin: the last one, or ``upto``."""
        last = len(self.s.stages) - 1
        return last if self.upto is None else min(self.upto, last)

    def _ours(self) -> dict[str, BenchRun]:
        return {b: r for b, r in self.s.benches.items() if r.stage <= self.last_stage()}

    def finished(self) -> bool:
        """Every bench of the stages this run may begin is done or skipped."""
        return all(r.state in FINISHED for r in self._ours().values())

    def only_waiting(self) -> list[str]:
        """When every stage this run may begin has begun and the only benches left wait for
        their return: those."""
        left = {b: r for b, r in self._ours().items() if r.state not in FINISHED}
        if self.active_stage() <= self.last_stage() or self.s.halted:
            return []
        return sorted(left) if all(r.state == WAITING for r in left.values()) else []

    def _set(self, bench: str, run: BenchRun, state: str, now: float, detail: str = "") -> None:
        run.state, run.since, run.detail = state, now, detail
        if state in HALTING and not self.s.halted:
            self.s.halted = f"{bench}: {state}" + (f" ({detail})" if detail else "")
        if self.on_change:
            self.on_change(bench, run)

    # -- one round
    def step(self, now: float) -> bool:
        """Advance every bench once; True when the rollout is over (finished or halted)."""
        if self.s.halted:
            return True
        if not self.s.started:
            self.s.started = now
        benches = self.fleet.benches()
        active = min(self.active_stage(), self.last_stage())
        for bench, run in self.s.benches.items():
            if self.s.halted:
                break
            b = benches.get(bench, BenchHealth(bench))
            if run.state == PLANNED and b.fw == self.s.version:
                self._set(bench, run, SKIPPED, now, "already on the version")
            elif run.state == PLANNED and run.stage <= active:
                run.state, run.detail = WAITING, ""  # said by _offer: sending, or why not
            if run.state == WAITING:
                self._offer(bench, run, b, now)
            elif run.state == SENDING:
                self._sending(bench, run, b, now)
            elif run.state == TRIAL:
                self._trial(bench, run, b, now)
            elif run.state == SOAKING:
                self._soak(bench, run, b, now)
        return bool(self.s.halted) or self.finished()

    def _offer(self, bench: str, run: BenchRun, b: BenchHealth, now: float) -> None:
        if b.fw == self.s.version:
            self._set(bench, run, SKIPPED, now, "already on the version")
            return
        if not b.reachable:
            why = "asleep" if b.sleeping else ("battery critical" if b.online else "offline")
            if run.detail != why:
                self._set(bench, run, WAITING, now, why)
            return
        run.after_id = self.fleet.last_id()
        run.heap_base = self.fleet.heap_baseline(bench, run.after_id)
        run.cid = self.sender.send(
            bench, "ota", {"url": self.s.url, "version": self.s.version, "sha256": self.s.sha256}
        )
        run.sent_at, run.sends, run.new_boot = now, run.sends + 1, None
        self._set(bench, run, SENDING, now, run.cid)

    def _ota_outcome(self, bench: str, run: BenchRun, recs: list[Rec], now: float) -> bool:
        """Halts on a `rolled_back` or `failed` of this version; True when one was found."""
        for r in recs:
            if r.kind == "event" and r.body.get("type") == "ota":
                state = r.body.get("state")
                if r.body.get("version") == self.s.version and state in (ROLLED_BACK, FAILED):
                    self._set(bench, run, str(state), now, f"`ota` event in boot {r.boot}")
                    return True
        return False

    def _sending(self, bench: str, run: BenchRun, b: BenchHealth, now: float) -> None:
        recs = self.fleet.records(bench, run.after_id)
        if self._ota_outcome(bench, run, recs, now):
            return
        ack = self.sender.ack(run.cid)
        if ack is not None:
            if ack.get("ok") is True:
                self._set(bench, run, TRIAL, now, "acked; rebooting into it")
            else:
                self._set(bench, run, FAILED, now, f"refused: {ack.get('detail', '')}"[:120])
            return
        if now - run.sent_at < self.limits.ack_timeout_s:
            return
        # No ack (the bench went away, or this is a second run that never saw it): if the
        # bench started on it, watch its trial; else offer it again once it is back.
        started = any(
            r.kind == "event"
            and r.body.get("type") in ("ota", "boot")
            and (r.body.get("version") == self.s.version or r.body.get("fw") == self.s.version)
            for r in recs
        )
        if started:
            self._set(bench, run, TRIAL, now, "no ack seen, but it started on it")
        else:
            self._set(bench, run, WAITING, now, "no ack: offered again when back")

    def _trial(self, bench: str, run: BenchRun, b: BenchHealth, now: float) -> None:
        recs = self.fleet.records(bench, run.after_id)
        if self._ota_outcome(bench, run, recs, now):
            return
        new_boot = next(
            (
                r.boot
                for r in recs
                if r.kind == "event"
                and r.body.get("type") == "boot"
                and r.body.get("fw") == self.s.version
            ),
            None,
        )
        applied = any(
            r.kind == "event"
            and r.body.get("type") == "ota"
            and r.body.get("state") == "applied"
            and r.body.get("version") == self.s.version
            for r in recs
        )
        if new_boot is not None and applied:
            run.new_boot = new_boot
            self._set(bench, run, SOAKING, now, f"committed in boot {new_boot}")
            return
        if b.online and now - run.sent_at > self.limits.commit_timeout_s:
            self._set(bench, run, STUCK, now, "neither committed nor rolled back in time")

    def _soak(self, bench: str, run: BenchRun, b: BenchHealth, now: float) -> None:
        recs = self.fleet.records(bench, run.after_id)
        if self._ota_outcome(bench, run, recs, now):
            return
        why = soak_problem(recs, run, self.limits, now)
        if why:
            self._set(bench, run, REGRESSED, now, why)
            return
        windows = [r for r in recs if r.kind == "telemetry" and r.boot == run.new_boot]
        if now - run.since >= self.limits.soak_s and any(r.received >= run.since for r in windows):
            self._set(bench, run, DONE, now, f"healthy for {self.limits.soak_s:g} s")


def soak_problem(recs: list[Rec], run: BenchRun, limits: Limits, now: float) -> str:
    """Why a committed bench is not healthy, or ''. Its new boot must show no fault, no boot
    after it, windows arriving, and free heap not below ``heap_ratio`` of the old median."""
    boot = run.new_boot or 0
    for r in recs:
        if r.boot > boot:
            return f"rebooted (boot {r.boot} after {boot})"
        if r.boot == boot and r.kind == "event" and r.body.get("type") == "fault":
            return f"fault {r.body.get('code', '?')}: {r.body.get('detail', '')}"[:120]
    windows = [r for r in recs if r.kind == "telemetry" and r.boot == boot]
    if run.heap_base:
        floor = run.heap_base * limits.heap_ratio
        low = [r.body["heap"] for r in windows if isinstance(r.body.get("heap"), int)]
        if low and min(low) < floor:
            return f"free heap {min(low)} B, under {limits.heap_ratio:g} of {run.heap_base} B"
    period = next(
        (int(r.body["period"]) for r in reversed(windows) if isinstance(r.body.get("period"), int)),
        60,
    )
    last = max([r.received for r in windows] + [run.since])
    silent = max(limits.missing_windows * period, 180.0)
    if now - last > silent:
        return f"no telemetry window for {now - last:.0f} s (window {period} s)"
    return ""
