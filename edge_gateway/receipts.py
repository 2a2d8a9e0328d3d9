"""Receipts: what the store holds of each bench, as merged inclusive seq ranges per boot.

docs/protocol.md: every stored record is covered by a receipt published after it was stored,
whatever its boot's age, and a receipt stays under 2,048 bytes. So each bench keeps the seqs
stored since its last receipt (``pending``); a receipt lists the ranges that hold them first,
then the latest boots' ranges as room allows. What does not fit stays pending and goes in the
next receipt. Building one costs the pending seqs and the ranges written, never the history.
"""

from __future__ import annotations

import bisect

from edge_gateway.protocol import VERSION

# The payload limit is 2,048 bytes; keep a margin for nothing in particular but safety.
MAX_RECEIPT_BYTES = 2000
# Boots remembered per bench (memory bound against a bench that reboots for ever); a boot
# with records still to receipt is never forgotten.
MAX_BOOTS_KEPT = 64
_EMPTY = len(f'{{"v":{VERSION},"boots":{{}}}}')


class Receipts:
    """Seq ranges per bench and boot, merged as seqs are added, with what awaits a receipt."""

    def __init__(self, ranges: dict[str, dict[int, list[tuple[int, int]]]] | None = None) -> None:
        self.ranges: dict[str, dict[int, list[list[int]]]] = {}
        self.pending: dict[str, dict[int, set[int]]] = {}
        # Boots held per bench past which add() trims again (see _trim).
        self.trim_at: dict[str, int] = {}
        for bench, boots in (ranges or {}).items():
            for boot, rs in boots.items():
                self.ranges.setdefault(bench, {})[boot] = sorted([lo, hi] for lo, hi in rs)
            self._trim(bench)  # the store holds every boot; memory keeps the newest

    def add(self, bench: str, boot: int, seq: int) -> None:
        boots = self.ranges.setdefault(bench, {})
        rs = boots.setdefault(boot, [])
        self.pending.setdefault(bench, {}).setdefault(boot, set()).add(seq)
        i = bisect.bisect_right(rs, [seq, float("inf")])
        # rs[i-1] starts at or before seq
        if i > 0 and rs[i - 1][0] <= seq <= rs[i - 1][1]:
            return
        join_left = i > 0 and rs[i - 1][1] == seq - 1
        join_right = i < len(rs) and rs[i][0] == seq + 1
        if join_left and join_right:
            rs[i - 1][1] = rs[i][1]
            del rs[i]
        elif join_left:
            rs[i - 1][1] = seq
        elif join_right:
            rs[i][0] = seq
        else:
            rs.insert(i, [seq, seq])
        if len(boots) > self.trim_at.get(bench, MAX_BOOTS_KEPT):
            self._trim(bench)

    def _trim(self, bench: str) -> None:
        """Forget the oldest boots past MAX_BOOTS_KEPT, but none with seqs still to receipt.

        A trim sorts every boot held, and a bench that sends each record under a new boot
        keeps them all pending until receipts drain them: trimmed at every add, each record
        cost a sort of them all (20,000 such records: 12 s of the one writer thread, which
        serves every bench). So add() trims again only once the boots held have doubled
        since the last trim; every receipt trims too.
        """
        boots = self.ranges.get(bench, {})
        if len(boots) > MAX_BOOTS_KEPT:
            keep = self.pending.get(bench, {})
            for old in sorted(boots)[: len(boots) - MAX_BOOTS_KEPT]:
                if old not in keep:
                    del boots[old]
        self.trim_at[bench] = 2 * max(len(boots), MAX_BOOTS_KEPT)

    def has_pending(self, bench: str) -> bool:
        return bool(self.pending.get(bench))

    def boots(self, bench: str, limit: int = MAX_RECEIPT_BYTES) -> dict[int, list[tuple[int, int]]]:
        """The next receipt's content; the pending seqs it covers are no longer pending."""
        boots = self.ranges.get(bench, {})
        pending = self.pending.get(bench, {})
        chosen: dict[int, set[tuple[int, int]]] = {}
        size = _EMPTY

        def take(boot: int, r: list[int]) -> bool:
            nonlocal size
            key = (r[0], r[1])
            have = chosen.get(boot)
            if have is not None and key in have:
                return True
            cost = len(f"[{r[0]},{r[1]}]")
            if have is None:
                cost += len(f'"{boot}":[]') + (1 if chosen else 0)
            else:
                cost += 1
            if size + cost > limit:
                return False
            size += cost
            chosen.setdefault(boot, set()).add(key)
            return True

        # First the ranges that hold what was stored since the last receipt, newest first.
        full = False
        for boot in sorted(pending, reverse=True):
            rs = boots.get(boot, [])
            seqs = pending[boot]
            covered: set[int] = set()
            for seq in sorted(seqs, reverse=True):
                i = bisect.bisect_right(rs, [seq, float("inf")]) - 1
                if i >= 0 and rs[i][0] <= seq <= rs[i][1] and not take(boot, rs[i]):
                    full = True
                    break
                covered.add(seq)  # (a seq in no range cannot happen; it is dropped)
            seqs -= covered
            if not seqs:
                del pending[boot]
            if full:
                break
        if not pending:
            self.pending.pop(bench, None)
        # Then the latest boots, newest ranges first, as room allows.
        if not full:
            for boot in sorted(boots, reverse=True):
                for r in reversed(boots[boot]):
                    if not take(boot, r):
                        full = True
                        break
                if full:
                    break
        if len(boots) > MAX_BOOTS_KEPT:
            self._trim(bench)
        return {b: sorted(rs) for b, rs in chosen.items()}

    def payload(self, bench: str) -> bytes:
        boots = self.boots(bench)
        parts = ",".join(
            f'"{b}":[' + ",".join(f"[{lo},{hi}]" for lo, hi in rs) + "]"
            for b, rs in sorted(boots.items(), reverse=True)
        )
        return f'{{"v":{VERSION},"boots":{{{parts}}}}}'.encode()
