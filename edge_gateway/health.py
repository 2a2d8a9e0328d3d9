"""Online and offline, exactly as docs/interfaces.md's ``[health]`` says.

A bench is offline when its will fired (the offline Status), when it has been silent longer
than ``max(offline_after_s, 2.5 × its last reported period)``, or when it announced a sleep and
is not back by ``until`` plus one window. Any record or online Status brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_PERIOD = 60


@dataclass
class BenchHealth:
    bench: str
    online: bool = False
    sleeping: bool = False
    until: float | None = None
    last_seen: float | None = None
    period: int | None = None  # last reported window, s
    boot: int | None = None
    fw: str | None = None
    soc: float | None = None
    power: str | None = None
    point_t: float = 0.0  # time of its last bench_status point (kept in order)
    # For the alert rules (edge_gateway.alerts), from the records as they are stored:
    safe: bool = False  # its latest boot event said safe mode
    tamper_at: float | None = None  # gateway time of its last tamper event
    tamper_kind: str = ""
    wet_since: float | None = None  # touch_wet fault, and no press counted since

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BenchHealth:
        """A bench as the store's ``benches`` table keeps it."""
        return cls(
            bench=row["bench"],
            online=bool(row["online"]),
            sleeping=bool(row["sleeping"]),
            until=row["until"],
            last_seen=row["last_seen"],
            period=row["period"],
            boot=row["boot"],
            fw=row["fw"],
            soc=row["soc"],
            power=row["power"],
        )

    @property
    def reachable(self) -> bool:
        """Online, awake, and with the battery to spare for a download and a reboot."""
        return self.online and not self.sleeping and self.power != "critical"


@dataclass
class Change:
    bench: str
    online: bool
    sleeping: bool
    why: str
    t: float  # the gateway's time of the change (uptime is counted by it)
    ts: float  # its bench_status point's time (see Health._set)


class Health:
    def __init__(self, offline_after_s: float, known: list[dict[str, Any]] | None = None) -> None:
        self.offline_after_s = offline_after_s
        self.benches: dict[str, BenchHealth] = {}
        for row in known or []:
            self.benches[row["bench"]] = BenchHealth.from_row(row)

    def resume(self, last_changes: dict[str, float]) -> None:
        """After a restart: each bench's next point goes after its last change's, so a retained
        birth Status days old (delivered again at the new subscription) cannot place an online
        point before the offline one a previous run wrote, which would stay the latest."""
        for bench, t in last_changes.items():
            b = self.get(bench)
            b.point_t = max(b.point_t, t)

    def get(self, bench: str) -> BenchHealth:
        b = self.benches.get(bench)
        if b is None:
            b = self.benches[bench] = BenchHealth(bench)
        return b

    def _set(
        self,
        b: BenchHealth,
        online: bool,
        sleeping: bool,
        why: str,
        now: float,
        ts: float | None = None,
    ) -> Change | None:
        if b.online == online and b.sleeping == sleeping:
            return None
        b.online, b.sleeping = online, sleeping
        # The point's time: the message's ts when it has one, the gateway's otherwise; never
        # before the bench's previous point, so the latest point is the latest state (a
        # retained birth Status delivered after a restart may be days old; a bench clock up
        # to 300 s ahead may stamp an online point after the gateway's next offline one).
        t = max(now if ts is None else float(ts), b.point_t + 0.001)
        b.point_t = t
        return Change(b.bench, online, sleeping, why, now, t)

    def on_status(
        self,
        bench: str,
        state: str,
        now: float,
        boot: int | None = None,
        fw: str | None = None,
        until: float | None = None,
        ts: float | None = None,
    ) -> Change | None:
        """A Status at the gateway's time `now`; `ts` is the Status's own, when it has one."""
        b = self.get(bench)
        if boot is not None:
            b.boot = boot
        if fw is not None:
            b.fw = fw
        if state == "online":
            b.last_seen = now
            b.until = None
            return self._set(b, True, False, "online status", now, ts)
        if state == "sleeping":
            b.last_seen = now
            b.until = until
            return self._set(b, False, True, f"sleeping until {until}", now)
        b.until = None
        return self._set(b, False, False, "offline status (will or clean shutdown)", now)

    def on_record(self, bench: str, now: float) -> Change | None:
        # Records may come from a spool, made long before: the bench is back now.
        b = self.get(bench)
        b.last_seen = now
        if not b.online:
            b.until = None
            return self._set(b, True, False, "records arriving", now)
        return None

    def silence_limit(self, b: BenchHealth) -> float:
        return max(self.offline_after_s, 2.5 * (b.period or 0))

    def tick(self, now: float) -> list[Change]:
        changes = []
        for b in self.benches.values():
            c: Change | None = None
            if b.online and b.last_seen is not None and now - b.last_seen > self.silence_limit(b):
                c = self._set(b, False, False, f"silent for {now - b.last_seen:.0f} s", now)
            elif b.sleeping and b.until is not None:
                window = b.period or DEFAULT_PERIOD
                if now > b.until + window:
                    why = f"not back from sleep by {b.until} + {window} s"
                    c = self._set(b, False, False, why, now)
            if c:
                changes.append(c)
        return changes
