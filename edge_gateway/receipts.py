"""Receipts: what the store holds of each bench, as merged inclusive seq ranges per boot."""

from __future__ import annotations

import bisect

from edge_gateway.protocol import receipt_payload

MAX_BOOTS = 3
MAX_RANGES = 32


class Receipts:
    """Seq ranges per bench and boot, merged as seqs are added."""

    def __init__(self, ranges: dict[str, dict[int, list[tuple[int, int]]]] | None = None) -> None:
        self.ranges: dict[str, dict[int, list[list[int]]]] = {}
        for bench, boots in (ranges or {}).items():
            for boot, rs in boots.items():
                self.ranges.setdefault(bench, {})[boot] = sorted([lo, hi] for lo, hi in rs)

    def add(self, bench: str, boot: int, seq: int) -> None:
        rs = self.ranges.setdefault(bench, {}).setdefault(boot, [])
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
        if len(self.ranges[bench]) > MAX_BOOTS * 4:  # memory bound; the payload trims to 3
            for old in sorted(self.ranges[bench])[: -MAX_BOOTS * 2]:
                del self.ranges[bench][old]

    def boots(self, bench: str) -> dict[int, list[tuple[int, int]]]:
        """The receipt's content: the 3 latest boots, each with its 32 latest ranges."""
        boots = self.ranges.get(bench, {})
        out: dict[int, list[tuple[int, int]]] = {}
        for boot in sorted(boots, reverse=True)[:MAX_BOOTS]:
            out[boot] = [(r[0], r[1]) for r in boots[boot][-MAX_RANGES:]]
        return out

    def payload(self, bench: str) -> bytes:
        return receipt_payload(self.boots(bench))
