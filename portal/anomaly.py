"""Ballot-stuffing guard: a bench whose votes today jump far above its own usual day is flagged.

A bench is judged only against itself (a busy square and a quiet village differ), and only once
it has a few days of history; small numbers never raise a flag.
"""

from __future__ import annotations

import statistics

MIN_HISTORY_DAYS = 3
MIN_VOTES = 20  # fewer votes than this in a day is never an anomaly
FACTOR = 4.0  # "far above": at least this many times the bench's usual day
FLOOR = 5.0  # a usual day is taken as at least this many votes


def usual_day(history: list[int]) -> float:
    """The bench's usual number of votes per day: the larger of median and mean, at least FLOOR."""
    return max(statistics.median(history), statistics.fmean(history), FLOOR)


def is_spike(history: list[int], today: int) -> bool:
    """True when `today` is far above the days in `history` (one count per earlier day)."""
    if len(history) < MIN_HISTORY_DAYS or today < MIN_VOTES:
        return False
    return today >= FACTOR * usual_day(history)


def spiking_benches(daily: dict[str, dict[int, int]], today: int) -> set[str]:
    """Benches whose count on day `today` is a spike; `daily` maps bench -> {day number: votes}.

    A bench's history runs from its first day with votes to the day before `today`, with the days
    without votes in between counted as zero.
    """
    flagged: set[str] = set()
    for bench, days in daily.items():
        earlier = [d for d in days if d < today]
        if not earlier:
            continue
        history = [days.get(d, 0) for d in range(min(earlier), today)]
        if is_spike(history, days.get(today, 0)):
            flagged.add(bench)
    return flagged
