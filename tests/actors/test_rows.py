"""Tests for actors/rows.py: stripes of fresh rows, stripe changes, retries, the retry policy."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rafale.actors.rows import RetryPolicy, RowSource


def drain(source: RowSource, now: float = 0.0) -> list[int]:
    """Every row ``source`` hands out at ``now`` until take() returns None."""
    rows = []
    while (taken := source.take(now)) is not None:
        rows.append(taken[0])
    return rows


def take_fresh(source: RowSource, k: int) -> list[int]:
    """The next ``k`` rows of ``source`` (fresh rows: nothing waits)."""
    rows = []
    for _ in range(k):
        taken = source.take(0.0)
        assert taken is not None and taken[1] == 1
        rows.append(taken[0])
    return rows


def drain_at_most(source: RowSource, k: int) -> list[int]:
    """Up to ``k`` rows of ``source`` (fewer when they run out)."""
    rows = []
    for _ in range(k):
        taken = source.take(0.0)
        if taken is None:
            break
        rows.append(taken[0])
    return rows


# ----- striping ---------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "limit"), [
    (1, 1), (1, 7), (2, 7), (3, 3), (3, 10), (4, 2), (5, 0), (8, 100),
])
def test_stripes_cover_every_row_once(count: int, limit: int) -> None:
    sources = [RowSource(i, count, limit) for i in range(count)]
    taken = [drain(s) for s in sources]
    for i, rows in enumerate(taken):
        assert rows == list(range(i, limit, count))
        assert sources[i].done
        assert sources[i].take(1e9) is None
    assert sorted(itertools.chain(*taken)) == list(range(limit))


@pytest.mark.parametrize(("index", "count"), [(0, 1), (0, 3), (2, 3), (4, 5)])
def test_cycle_never_ends(index: int, count: int) -> None:
    source = RowSource(index, count, None)
    rows = take_fresh(source, 500)
    assert rows == [index + j * count for j in range(500)]
    assert not source.done
    assert source.next_row == index + 500 * count


@given(st.integers(1, 6), st.integers(0, 60), st.data())
def test_stripes_property(count: int, limit: int, data: st.DataObject) -> None:
    sources = [RowSource(i, count, limit) for i in range(count)]
    order = data.draw(st.permutations(list(range(count)) * (limit // count + 2)))
    taken: list[int] = []
    for i in order:  # interleaved: each source on its own
        row = sources[i].take(0.0)
        if row is not None:
            taken.append(row[0])
    taken += [r for s in sources for r in drain(s)]
    assert sorted(taken) == list(range(limit))


# ----- stripe changes ---------------------------------------------------------------------


@given(st.data())
def test_lost_source_stripes_change_at_a_common_row(data: st.DataObject) -> None:
    count = data.draw(st.integers(2, 5), label="count")
    limit = data.draw(st.integers(0, 80), label="limit")
    lost = data.draw(st.integers(0, count - 1), label="lost")
    sources = [RowSource(i, count, limit) for i in range(count)]
    taken: dict[int, list[int]] = {}
    for i, source in enumerate(sources):
        k = data.draw(st.integers(0, limit // count + 1), label=f"taken by {i}")
        taken[i] = drain_at_most(source, k)
    lowest = max(s.next_row for s in sources)
    boundary = data.draw(st.integers(lowest, lowest + 3 * count), label="from_row")
    survivors = [i for i in range(count) if i != lost]
    for pos, i in enumerate(survivors):
        assert sources[i].set_stripe(pos, len(survivors), from_row=boundary) is False
    for i in survivors:
        taken[i] += drain(sources[i])

    every = [r for rows in taken.values() for r in rows]
    counts = Counter(every)
    assert max(counts.values(), default=1) == 1, f"taken twice: {counts.most_common(3)}"
    for i in survivors:  # rows below the boundary stay with their old stripe
        assert [r for r in taken[i] if r < boundary] == list(range(i, min(boundary, limit), count))
    from_boundary = sorted(r for i in survivors for r in taken[i] if r >= boundary)
    assert from_boundary == list(range(boundary, limit))
    never = set(range(limit)) - set(every)
    lost_next = sources[lost].next_row
    assert never == set(range(lost_next, min(boundary, limit), count))


@pytest.mark.parametrize(("taken", "from_row", "late"), [
    (0, 0, False),   # nothing taken yet
    (0, 5, False),
    (3, 6, True),    # rows 0, 3, 6 taken: 6 >= 6
    (3, 7, False),
    (3, 9, False),   # 9 is the next row, not taken yet
    (3, 2, True),
    (1, 0, True),
])
def test_set_stripe_is_late_when_a_row_past_the_boundary_was_taken(
        taken: int, from_row: int, late: bool) -> None:
    source = RowSource(0, 3, 100)
    rows = take_fresh(source, taken)
    assert source.set_stripe(1, 2, from_row=from_row) is late
    after = take_fresh(source, 5)
    assert not set(after) & set(rows)
    assert all(r % 2 == 1 for r in after if r >= from_row)
    assert all(r % 3 == 0 for r in after if r < from_row)


def test_set_stripe_without_boundary_starts_at_the_next_row() -> None:
    source = RowSource(1, 3, None)
    assert take_fresh(source, 2) == [1, 4]
    assert source.set_stripe(0, 2) is False
    assert take_fresh(source, 3) == [8, 10, 12]


@pytest.mark.parametrize(("index", "count"), [(2, 2), (-1, 2), (0, 0), (0, 1.5)])
def test_set_stripe_refuses_a_bad_stripe(index: int, count: float) -> None:
    with pytest.raises(ValueError, match="stripe"):
        RowSource(0, 3).set_stripe(index, count)  # type: ignore[arg-type]


def test_two_stripe_changes_never_repeat_a_row() -> None:
    source = RowSource(0, 3, None)
    assert take_fresh(source, 3) == [0, 3, 6]
    assert source.set_stripe(1, 2, from_row=4) is True  # late: 6 was taken
    assert source.set_stripe(0, 1, from_row=6) is True  # late too: 6 was taken
    assert 6 not in take_fresh(source, 3)


# ----- retries and handed-over rows -------------------------------------------------------


def test_retry_waits_for_its_ready_time_then_comes_first() -> None:
    source = RowSource(0, 1, 3)
    assert source.take(0.0) == (0, 1)
    source.retry(0, 2, ready_at=5.0)
    assert source.waiting == 1 and source.next_ready_s() == 5.0
    assert source.take(4.9) == (1, 1)  # not ready: a fresh row instead
    assert source.take(5.0) == (0, 2)
    assert source.take(5.0) == (2, 1)
    assert source.done and source.next_ready_s() == float("inf")


def test_done_is_false_while_a_retry_waits() -> None:
    source = RowSource(0, 2, 2)
    assert drain(source) == [0]
    assert source.done
    source.retry(0, 2, ready_at=1.0)
    assert not source.done
    assert source.take(0.5) is None  # fresh rows over, the retry is not ready
    assert not source.done
    assert source.take(1.0) == (0, 2)
    assert source.done


@pytest.mark.parametrize(("retries", "expected"), [
    ([(7, 3.0), (8, 1.0), (9, 2.0)], [8, 9, 7]),
    ([(7, 1.0), (8, 1.0), (9, 1.0)], [7, 8, 9]),  # same time: in the order given
    ([(7, 2.0), (8, 0.0), (9, 2.0)], [8, 7, 9]),
])
def test_retries_come_in_ready_order(retries: list[tuple[int, float]],
                                     expected: list[int]) -> None:
    source = RowSource(0, 1, 0)  # no fresh row
    for row, ready_at in retries:
        source.retry(row, 2, ready_at)
    assert drain(source, now=10.0) == expected
    assert source.done


def test_added_rows_come_before_fresh_rows() -> None:
    source = RowSource(1, 2, 6)
    source.add([4, 0, 2], attempt=3)
    assert source.waiting == 3
    out = [source.take(0.0) for _ in range(6)]
    assert out == [(4, 3), (0, 3), (2, 3), (1, 1), (3, 1), (5, 1)]
    assert source.take(0.0) is None and source.done


# ----- the retry policy -------------------------------------------------------------------


@pytest.mark.parametrize(("retries", "attempt", "status", "kind", "wanted"), [
    (2, 1, 429, "", True),
    (2, 2, 503, "", True),
    (2, 3, 503, "", False),  # attempt > retries
    (0, 1, 429, "", False),
    (1, 1, 0, "connect", True),
    (1, 1, 0, "timeout", True),
    (1, 1, 0, "recv", True),
    (1, 2, 0, "timeout", False),
    (3, 1, 500, "", False),
    (3, 1, 404, "", False),
    (3, 1, 200, "", False),
    (3, 1, 0, "tls", False),
    (3, 1, 0, "dns", False),
    (3, 1, 500, "timeout", False),  # an answer: its status decides
])
def test_retry_policy_wants(retries: int, attempt: int, status: int, kind: str,
                            wanted: bool) -> None:
    assert RetryPolicy(retries).wants(attempt, status, kind) is wanted


@pytest.mark.parametrize(("policy", "attempt", "retry_after_s", "delay_s"), [
    (RetryPolicy(3), 1, 0.0, 0.5),
    (RetryPolicy(3), 2, 0.0, 1.0),
    (RetryPolicy(3), 3, 0.0, 2.0),
    (RetryPolicy(3), 7, 0.0, 30.0),  # 32 s capped at backoff_max_s
    (RetryPolicy(3, backoff_s=0.1, backoff_max_s=0.3), 3, 0.0, 0.3),
    (RetryPolicy(3), 1, 12.0, 12.0),  # Retry-After wins over the backoff
    (RetryPolicy(3), 5, 1.0, 1.0),
    (RetryPolicy(3), 1, 900.0, 300.0),  # capped at retry_after_max_s
    (RetryPolicy(3, retry_after_max_s=5.0), 1, 9.0, 5.0),
])
def test_retry_policy_delay(policy: RetryPolicy, attempt: int, retry_after_s: float,
                            delay_s: float) -> None:
    assert policy.delay_s(attempt, retry_after_s) == pytest.approx(delay_s)


@pytest.mark.parametrize(("options", "named"), [
    ({"retries": -1}, "retries -1"),
    ({"retries": 1.5}, "retries 1.5"),
    ({"backoff_s": 0}, "backoff_s 0"),
    ({"backoff_max_s": -1.0}, "backoff_max_s -1"),
    ({"retry_after_max_s": 0}, "retry_after_max_s 0"),
    ({"backoff_s": float("nan")}, "backoff_s nan"),
])
def test_retry_policy_refuses_bad_values(options: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        RetryPolicy(**options)  # type: ignore[arg-type]
