import bisect
import random

import pytest

from sse_edge.history.sequence_search import locate_last_n


def counter(matching: list[int]):
    async def count_from(seq: int) -> int:
        return len(matching) - bisect.bisect_left(matching, seq)

    return count_from


def last_n_by_reading(matching: list[int], low: int, high: int, n: int) -> list[int]:
    return [s for s in matching if low <= s <= high][-n:]


def read_window(matching, start, skip, high):
    return [s for s in matching if start <= s <= high][skip:]


@pytest.mark.parametrize("density", [1.0, 0.3, 0.01, 0.001])
@pytest.mark.parametrize("n", [1, 10, 100, 1000])
async def test_window_holds_exactly_the_last_n(density, n):
    rng = random.Random(f"{density}-{n}")
    matching = [s for s in range(1, 200_001) if rng.random() < density]
    start = await locate_last_n(counter(matching), 1, 200_000, n)
    assert read_window(matching, start.seq, start.skip, 200_000) == last_n_by_reading(matching, 1, 200_000, n)
    assert start.skip <= max(8, n // 4)


async def test_clustered_matches_need_few_probes():
    # All matches in one burst early on, then nothing: interpolation alone would crawl.
    matching = list(range(10_000, 12_000)) + list(range(900_000, 900_050))
    start = await locate_last_n(counter(matching), 1, 1_000_000, 100)
    assert read_window(matching, start.seq, start.skip, 1_000_000) == last_n_by_reading(
        matching, 1, 1_000_000, 100
    )
    assert start.probes <= 40


async def test_an_upper_bound_excludes_later_matches():
    matching = list(range(1, 10_001))
    beyond = 10_000 - 7_000  # matches after sequence 7,000
    start = await locate_last_n(counter(matching), 1, 7_000, 50, beyond=beyond)
    assert read_window(matching, start.seq, start.skip, 7_000) == list(range(6_951, 7_001))


async def test_fewer_matches_than_asked_start_at_the_low_end():
    matching = [5, 50, 500]
    start = await locate_last_n(counter(matching), 3, 1_000, 10)
    assert (start.seq, start.skip) == (3, 0)


async def test_uniform_data_is_found_in_a_handful_of_probes():
    matching = list(range(1, 1_000_001, 100))  # one resource of a hundred
    start = await locate_last_n(counter(matching), 1, 1_000_000, 100)
    assert start.probes <= 4
