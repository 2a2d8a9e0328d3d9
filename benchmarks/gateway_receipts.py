"""The cost of building a Receipt for a bench whose records are fragmented.

A hostile or unlucky bench can leave its seqs in 100,000 ranges (every other seq stored, over
many boots). Before, building its receipt sorted and sliced its whole history: 6.3 s of CPU
for 100k ranges. Now a receipt costs what was stored since the last one plus what it writes.

Prints the time to build one receipt after one new record, for a bench with 100,000 ranges
and, as the baseline in the same run, for a bench with one range; and the receipt's size.
"""

from __future__ import annotations

import time

from edge_gateway.receipts import Receipts


def build_ms(
    r: Receipts, bench: str, boot: int, seq: int, step: int, n: int = 200
) -> tuple[float, int]:
    t0 = time.process_time()
    size = 0
    for i in range(n):
        r.add(bench, boot, seq + step * i)
        size = len(r.payload(bench))
    return (time.process_time() - t0) / n * 1000, size


def main() -> None:
    r = Receipts()
    t0 = time.process_time()
    for boot in range(1, 11):
        for seq in range(1, 20_001, 2):
            r.add("frag", boot, seq)  # 10 boots x 10,000 ranges = 100,000 ranges
    fill = time.process_time() - t0
    while r.has_pending("frag"):
        r.payload("frag")
    for seq in range(1, 1001):
        r.add("tidy", 1, seq)
    r.payload("tidy")
    ranges = sum(len(v) for v in r.ranges["frag"].values())
    base, base_size = build_ms(r, "tidy", 1, 1001, 1)
    frag, frag_size = build_ms(r, "frag", 5, 30_001, 2)
    print(f"adding 100,000 fragmented ranges: {fill:.2f} s of CPU ({ranges} ranges kept)")
    print(f"receipt after a new record, bench with 1 range:        {base:.3f} ms ({base_size} B)")
    print(f"receipt after a new record, bench with {ranges} ranges: {frag:.3f} ms ({frag_size} B)")
    print(f"ratio: {frag / base:.1f}x the tidy bench")


if __name__ == "__main__":
    main()
