"""Loss and takeover as plain functions: the stripes over time, who is lost, the gap and
its shares, the rows to resend."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rafale.actors.pacing import Schedule
from rafale.cluster.takeover import (
    Silent,
    StripeLog,
    boundary,
    gap,
    shares,
    silent_losses,
    unknown_rows,
)


@st.composite
def stripe_logs(draw: st.DrawFn) -> tuple[StripeLog, int]:
    """A log of up to 3 losses among up to 5 actors, and the request count it covers."""
    alive = list(range(draw(st.integers(2, 5))))
    log = StripeLog(alive)
    start = 0
    for _ in range(draw(st.integers(0, min(3, len(alive) - 1)))):
        alive.remove(draw(st.sampled_from(alive)))
        start += draw(st.integers(0, 50))
        log.add(start, alive)
    return log, start + draw(st.integers(1, 50))


@given(stripe_logs(), st.data())
def test_held_requests_are_exactly_the_owners(found: tuple[StripeLog, int],
                                              data: st.DataObject) -> None:
    log, total = found
    owners = log.owners(total)
    actor = data.draw(st.sampled_from(log.epochs[0][1]))
    k_from = data.draw(st.integers(0, total))
    k_to = data.draw(st.integers(k_from, total))
    held = sorted(k for r in log.held(actor, k_from, k_to) for k in r)
    assert held == [k for k in range(k_from, k_to) if owners[k] == actor]


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 60), st.integers(1, 5)),
                max_size=4), st.integers(1, 4))
def test_shares_deal_every_request_once(parts: list[tuple[int, int, int]], count: int) -> None:
    spans = [range(a, a + n, step) for a, n, step in parts]
    dealt = shares(spans, count)
    assert len(dealt) == count
    got: Counter[int] = Counter(k for share in dealt for a, b, c in share for k in range(a, b, c))
    want: Counter[int] = Counter(k for r in spans for k in r)
    assert got == want
    sizes = [sum(len(range(a, b, c)) for a, b, c in share) for share in dealt]
    assert max(sizes) - min(sizes) <= len(spans)  # as even as the spans allow


# ----- who is lost ----------------------------------------------------------------------


def test_silent_actors_are_lost_by_their_node_or_their_lease() -> None:
    quiet = [Silent(0, "n0", 1.6), Silent(1, "n1", 3.2), Silent(2, "gone", 0.4)]
    assert silent_losses(quiet, 3.0, {"n0", "n1"}) == [
        (1, ("lease", "lease expired: no answer for 3.2 s (lease_s 3)")),
        (2, ("node", "node removed (Ray reports its node dead)"))]
    # Ray cannot tell which nodes are alive right now: only the lease decides.
    assert silent_losses(quiet, 3.0, None) == [
        (1, ("lease", "lease expired: no answer for 3.2 s (lease_s 3)"))]
    assert silent_losses(quiet, 5.0, {"n0", "n1", "gone"}) == []


# ----- from where the survivors take over, and the gap ----------------------------------


SCHEDULE = Schedule.constant(100, 10.0)  # request k is due at k / 100 s


def test_the_boundary_is_the_first_request_due_after_half_a_second_ahead() -> None:
    assert boundary(SCHEDULE, 3.0) == SCHEDULE.count_due(3.5) == 351


def test_a_lost_actors_gap_is_its_stripe_since_its_last_drained_second() -> None:
    stripes = StripeLog([0, 1, 2])
    at = boundary(SCHEDULE, 4.0)  # 451
    stripes.add(at, [0, 2])
    # Actor 1's last drained second was 1: its requests due after 2.0 s (k = 201 on; the
    # one due at 2.0 s itself was counted intended in that second's window) to 451.
    record, dealt = gap(SCHEDULE, stripes, 1, 1, 0.0, 4.0, at, "catch-up", 2)
    held = [k for k in range(201, 451) if k % 3 == 1]
    assert record == {"mode": "catch-up", "requests": len(held), "from_s": 2.0, "to_s": 4.51}
    caught = sorted(k for share in dealt for a, b, c in share for k in range(a, b, c))
    assert caught == held and all(dealt)  # every request once, to both survivors
    # Time paused moves the schedule: the same last second is earlier in the schedule.
    record, _ = gap(SCHEDULE, stripes, 1, 1, 0.5, 4.0, at, "catch-up", 2)
    assert record["from_s"] == 1.5 and record["requests"] == len(
        [k for k in range(151, 451) if k % 3 == 1])


def test_skipped_gaps_and_gaps_after_the_schedule_are_counted_not_sent() -> None:
    stripes = StripeLog([0, 1])
    record, dealt = gap(SCHEDULE, stripes, 1, 3, 0.0, 5.0, 550, "skip", 1)
    assert record["mode"] == "skip" and record["requests"] == 75 and dealt == [[]]
    record, dealt = gap(SCHEDULE, stripes, 1, 8, 0.0, 10.2, 1000, "catch-up", 1)
    assert record["mode"] == "skip (the schedule had ended)" and dealt == [[]]
    assert record["to_s"] == 10.0  # the boundary is past the last request
    record, dealt = gap(None, stripes, 1, 3, 0.0, 5.0, None, "catch-up", 1)
    assert record == {"mode": "none (closed model)", "requests": 0} and dealt == [[]]


def test_unknown_rows_are_the_lost_actors_unreported_rows() -> None:
    owner = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    reported = np.zeros(10, bool)
    reported[[1, 2]] = True
    assert unknown_rows(owner, [1, 2], reported).tolist() == [4, 5, 7]
    assert unknown_rows(owner, [], reported).tolist() == []
