"""The gateway's request ids: unique, unguessable, and sorted by time (issue 12: the ledger's
index on them must grow at its end, or the SQLite flusher falls behind at saturation)."""

from __future__ import annotations

import itertools
import re

from polyroute.surface.http import RequestIds


def test_ids_sort_by_time_and_are_unique_within_a_millisecond() -> None:
    ticks = itertools.chain([1000.0] * 500, (1000.0 + i / 1000 for i in range(1, 501)))
    ids = RequestIds(clock=lambda: next(ticks))
    made = [ids.new() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in made)
    assert len(set(made)) == 1000
    assert [rid[:12] for rid in made] == sorted(rid[:12] for rid in made)
    assert made[0][:12] == f"{1_000_000:012x}"


def test_the_random_part_has_no_counter_to_guess_from() -> None:
    ids = RequestIds(clock=lambda: 5.0)
    tails = [ids.new()[12:] for _ in range(2000)]
    assert len(set(tails)) == 2000
    # Consecutive ids differ in about half their 80 bits, as a pseudorandom function's would;
    # a counter (or a counter with a fixed prefix) would differ in a few low bits.
    flips = [bin(int(a, 16) ^ int(b, 16)).count("1") for a, b in itertools.pairwise(tails)]
    assert 35 < sum(flips) / len(flips) < 45


def test_two_processes_do_not_share_ids() -> None:
    one, two = RequestIds(clock=lambda: 7.0), RequestIds(clock=lambda: 7.0)
    assert {one.new() for _ in range(100)}.isdisjoint({two.new() for _ in range(100)})
