"""The driver's record of stripes over time, and the dealing out of a lost actor's gap."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from rafale.cluster.stripes import StripeLog, shares


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
