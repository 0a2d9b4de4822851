"""The pacer: when is request k due. Pure functions of the schedule: no clock, no I/O.

A :class:`Schedule` is a list of piecewise-linear rate :class:`Stage` s (k6's
ramping-arrival-rate idea); time 0 is the run start. The expected number of requests by
time t is the integral of the rate, ``integral(t)``. Global request k (0-based) is due at

    t_k = sup { t : integral(t) <= k }

i.e. when the integral reaches k, and, if the integral stays at k through a zero-rate
stretch, at the end of that stretch (so no request is ever due inside a zero-rate stage).
Request 0 is due at t = 0 unless the schedule starts with a zero-rate stage. A schedule
holds ``total()`` requests: those with t_k before its end.

Actor ``index`` of ``count`` takes requests index, index + count, ... (:class:`StripedPacer`),
so n actors together follow the one global schedule exactly without bursting together.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rafale.actors.checks import check_index, check_number

__all__ = ["Pacer", "Schedule", "Stage", "StripedPacer", "SwitchPacer", "UnlimitedPacer"]

_INF = math.inf
# Relative slack when deciding whether the schedule's total integral is a whole number.
_TOTAL_TOL = 1e-9


@dataclass(frozen=True)
class Stage:
    """A linear segment of the rate: from start_rate_per_s to end_rate_per_s over duration_s."""

    duration_s: float
    start_rate_per_s: float
    end_rate_per_s: float

    def __post_init__(self) -> None:
        check_number("Stage.duration_s", self.duration_s, "s")
        check_number("Stage.start_rate_per_s", self.start_rate_per_s, "req/s", zero_ok=True)
        check_number("Stage.end_rate_per_s", self.end_rate_per_s, "req/s", zero_ok=True)

    @property
    def slope_per_s2(self) -> float:
        return (self.end_rate_per_s - self.start_rate_per_s) / self.duration_s


@dataclass(frozen=True)
class Schedule:
    """The global schedule: stages back to back from time 0 (the run start).

    ``_slopes`` and ``_kept`` are internal (used by :meth:`with_rate_from` to keep a split
    stage's slope bit-identical, and the requests already due); leave them out.
    """

    stages: tuple[Stage, ...]
    _slopes: tuple[float, ...] | None = field(default=None, repr=False, compare=False)
    _kept: int = field(default=0, repr=False, compare=False)
    # Compiled per-stage arrays (start time, start count, start rate, slope, duration).
    _t: list[float] = field(init=False, repr=False, compare=False)
    _c: list[float] = field(init=False, repr=False, compare=False)
    _a: list[float] = field(init=False, repr=False, compare=False)
    _b: list[float] = field(init=False, repr=False, compare=False)
    _d: list[float] = field(init=False, repr=False, compare=False)
    _end_s: float = field(init=False, repr=False, compare=False)
    _end_count: float = field(init=False, repr=False, compare=False)
    _total: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        stages = tuple(self.stages) if isinstance(self.stages, list | tuple) else None
        if not stages:
            raise ValueError(f"Schedule.stages must be a non-empty sequence of Stage, "
                             f"got {self.stages!r}")
        for i, stage in enumerate(stages):
            if not isinstance(stage, Stage):
                raise ValueError(f"Schedule.stages[{i}] must be a Stage, got {stage!r}")
        slopes = self._slopes
        if slopes is None:
            slopes = tuple(s.slope_per_s2 for s in stages)
        elif len(slopes) != len(stages):
            raise ValueError(f"Schedule._slopes must have one slope per stage "
                             f"({len(stages)}), got {len(slopes)}")
        t_list: list[float] = []
        c_list: list[float] = []
        t = c = 0.0
        for stage, b in zip(stages, slopes, strict=True):
            t_list.append(t)
            c_list.append(c)
            d, a = stage.duration_s, stage.start_rate_per_s
            t += d
            c += a * d + 0.5 * b * d * d
        if not math.isfinite(c):
            raise ValueError(f"Schedule holds too many requests to count ({c!r}); "
                             f"lower the rates or durations")
        total = math.ceil(c - _TOTAL_TOL * max(1.0, c))
        setattr_ = object.__setattr__
        setattr_(self, "stages", stages)
        setattr_(self, "_slopes", tuple(slopes))
        setattr_(self, "_t", t_list)
        setattr_(self, "_c", c_list)
        setattr_(self, "_a", [s.start_rate_per_s for s in stages])
        setattr_(self, "_b", list(slopes))
        setattr_(self, "_d", [s.duration_s for s in stages])
        setattr_(self, "_end_s", t)
        setattr_(self, "_end_count", c)
        # Requests already due when the rate changed stay in the schedule at their times,
        # even when the new rate is 0 and the integral never reaches the next whole number.
        setattr_(self, "_total", max(0, total, self._kept))

    # ----- constructors -----------------------------------------------------------------

    @classmethod
    def constant(cls, rate_per_s: float, duration_s: float) -> Schedule:
        """rate_per_s requests per second for duration_s seconds."""
        return cls((Stage(duration_s, rate_per_s, rate_per_s),))

    @classmethod
    def ramp_then_constant(cls, rate_per_s: float, ramp_s: float, duration_s: float) -> Schedule:
        """Linear from 0 to rate_per_s over ramp_s, then constant; duration_s in total."""
        check_number("ramp_s", ramp_s, "s", zero_ok=True)
        check_number("duration_s", duration_s, "s")
        if ramp_s > duration_s:
            raise ValueError(f"ramp_s must be <= duration_s ({duration_s!r}), got {ramp_s!r}")
        if ramp_s == 0:
            return cls.constant(rate_per_s, duration_s)
        stages = [Stage(ramp_s, 0.0, rate_per_s)]
        if duration_s > ramp_s:
            stages.append(Stage(duration_s - ramp_s, rate_per_s, rate_per_s))
        return cls(tuple(stages))

    @classmethod
    def from_stages(cls, stages: Sequence[tuple[float, float]]) -> Schedule:
        """k6-like stages of (duration_s, target_rate_per_s), each a linear ramp from the
        previous target (starting at 0) to its own target."""
        if not stages:
            raise ValueError(f"from_stages needs at least one (duration_s, target_rate_per_s) "
                             f"pair, got {stages!r}")
        out: list[Stage] = []
        previous = 0.0
        for i, pair in enumerate(stages):
            try:
                duration_s, target = pair
            except (TypeError, ValueError):
                raise ValueError(f"stage {i} must be a (duration_s, target_rate_per_s) pair, "
                                 f"got {pair!r}") from None
            out.append(Stage(duration_s, previous, target))
            previous = target
        return cls(tuple(out))

    # ----- queries ----------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        return self._end_s

    def total(self) -> int:
        """Number of requests in the whole schedule (those due before its end)."""
        return self._total

    def rate_at(self, t_s: float) -> float:
        """The intended rate (req/s) at time t_s; 0 outside the schedule."""
        if t_s < 0 or t_s >= self._end_s:
            return 0.0
        i = bisect_right(self._t, t_s) - 1
        return self._a[i] + self._b[i] * (t_s - self._t[i])

    def integral(self, t_s: float) -> float:
        """Expected number of requests by time t_s (the integral of the rate from 0)."""
        if t_s <= 0:
            return 0.0
        if t_s >= self._end_s:
            return self._end_count
        i = bisect_right(self._t, t_s) - 1
        tau = t_s - self._t[i]
        return self._c[i] + self._a[i] * tau + 0.5 * self._b[i] * tau * tau

    def time_of(self, k: int) -> float:
        """When global request k is due (seconds from run start); inf if k >= total()."""
        if k >= self._total or k < 0:
            if k < 0:
                raise ValueError(f"request index must be >= 0, got {k!r}")
            return _INF
        i = bisect_right(self._c, k) - 1
        d = k - self._c[i]
        a = self._a[i]
        b = self._b[i]
        if b == 0.0:
            tau = d / a if a > 0.0 else (0.0 if d <= 0.0 else self._d[i])
        else:
            disc = a * a + 2.0 * b * d
            den = a + math.sqrt(disc) if disc > 0.0 else a
            tau = 2.0 * d / den if den > 0.0 else (0.0 if d <= 0.0 else self._d[i])
        dur = self._d[i]
        if tau > dur:
            tau = dur
        return self._t[i] + tau

    def count_due(self, t_s: float) -> int:
        """Number of requests k with time_of(k) <= t_s (exactly consistent with time_of)."""
        if t_s < 0:
            return 0
        total = self._total
        if t_s >= self._end_s:
            return total
        n = int(self.integral(t_s)) + 1  # a guess, corrected against time_of below
        if n > total:
            n = total
        time_of = self.time_of
        while n > 0 and time_of(n - 1) > t_s:
            n -= 1
        while n < total and time_of(n) <= t_s:
            n += 1
        return n

    def with_rate_from(self, at_s: float, rate_per_s: float) -> Schedule:
        """The same schedule before at_s, then rate_per_s constant until the same end.

        The integral is continuous at at_s (no burst, no gap) and every request due
        by at_s keeps its exact time and stays in the schedule, also when the new rate is 0
        (a rate falling to 0 stops new requests; it never takes back those already due).
        at_s at or past the end returns self.
        """
        check_number("at_s", at_s, "s", zero_ok=True)
        check_number("rate_per_s", rate_per_s, "req/s", zero_ok=True)
        end = self._end_s
        if at_s >= end:
            return self
        if at_s == 0:
            return Schedule.constant(rate_per_s, end)
        i = bisect_right(self._t, at_s) - 1
        stages = list(self.stages[:i])
        slopes = list(self._b[:i])
        tau = at_s - self._t[i]
        if tau > 0:
            a, b = self._a[i], self._b[i]
            rate_at = max(0.0, a + b * tau)
            stages.append(Stage(tau, a, rate_at))
            slopes.append(b)
        rest = end - at_s
        stages.append(Stage(rest, rate_per_s, rate_per_s))
        slopes.append(0.0)
        return Schedule(tuple(stages), _slopes=tuple(slopes), _kept=self.count_due(at_s))


class Pacer(Protocol):
    """When is local request j due, and how many are due by a time (schedule seconds)."""

    def due_s(self, j: int) -> float: ...

    def global_k(self, j: int) -> int: ...

    def count_due(self, t_s: float) -> int: ...

    def total(self) -> int: ...


@dataclass(frozen=True)
class StripedPacer:
    """Actor ``index`` of ``count``: global requests k >= start_k with k % count == index."""

    schedule: Schedule
    index: int
    count: int
    start_k: int = 0
    _first_k: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise ValueError(f"StripedPacer.schedule must be a Schedule, got {self.schedule!r}")
        count = check_number("StripedPacer.count", self.count, "actors", integer=True)
        check_index("StripedPacer.index", self.index, count)
        start_k = check_number("StripedPacer.start_k", self.start_k, "requests", zero_ok=True,
                               integer=True)
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "start_k", start_k)
        first = self.start_k + (self.index - self.start_k) % self.count
        object.__setattr__(self, "_first_k", first)

    def global_k(self, j: int) -> int:
        """The global index of this actor's j-th request."""
        return self._first_k + j * self.count

    def due_s(self, j: int) -> float:
        return self.schedule.time_of(self._first_k + j * self.count)

    def local_below(self, global_n: int) -> int:
        """Local requests whose global k < global_n."""
        n = global_n - self._first_k
        return 0 if n <= 0 else (n + self.count - 1) // self.count

    def count_due(self, t_s: float) -> int:
        return self.local_below(self.schedule.count_due(t_s))

    def total(self) -> int:
        return self.local_below(self.schedule.total())

    def with_schedule(self, schedule: Schedule) -> StripedPacer:
        """The same stripe on another schedule (a new rate from some time on)."""
        return StripedPacer(schedule, self.index, self.count, self.start_k)


@dataclass(frozen=True)
class SwitchPacer:
    """A stripe change at a common request boundary: the old pacer's requests from its
    local request ``j0`` up to global request ``switch_k`` (excluded), then the new
    pacer's (a :class:`StripedPacer` starting at ``switch_k``). Every actor switches at
    the same request, so no request is sent twice or skipped however late each one hears
    of the change (as long as it hears before ``switch_k`` is due)."""

    old: StripedPacer | SwitchPacer
    j0: int
    new: StripedPacer
    # Old requests left before the switch (none when the switch is already behind j0).
    _n_old: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_n_old",
                           max(0, self.old.local_below(self.switch_k) - self.j0))

    @property
    def switch_k(self) -> int:
        return self.new.start_k

    def settled(self, j: int) -> tuple[StripedPacer, int, int] | None:
        """Once local request ``j`` is past the switch: the new pacer alone, j in it, and
        how many old requests came before (so that switches never nest deeper than the
        ones still pending)."""
        return (self.new, j - self._n_old, self._n_old) if j >= self._n_old else None

    def global_k(self, j: int) -> int:
        n_old = self._n_old
        return self.old.global_k(self.j0 + j) if j < n_old else self.new.global_k(j - n_old)

    def due_s(self, j: int) -> float:
        n_old = self._n_old
        return self.old.due_s(self.j0 + j) if j < n_old else self.new.due_s(j - n_old)

    def local_below(self, global_n: int) -> int:
        old = min(self.old.local_below(global_n), self.j0 + self._n_old) - self.j0
        return max(0, old) + self.new.local_below(global_n)

    def count_due(self, t_s: float) -> int:
        return self.local_below(self.new.schedule.count_due(t_s))

    def total(self) -> int:
        return self.local_below(self.new.schedule.total())

    def with_schedule(self, schedule: Schedule) -> SwitchPacer:
        return SwitchPacer(self.old.with_schedule(schedule), self.j0,
                           self.new.with_schedule(schedule))


@dataclass(frozen=True)
class UnlimitedPacer:
    """The closed model: every request is due at once (as fast as the in-flight cap allows).

    Local request j is global request index + j * count (the stripe a feed row comes from).
    """

    total_requests: int = sys.maxsize
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        total = check_number("UnlimitedPacer.total_requests", self.total_requests, "requests",
                             zero_ok=True, integer=True)
        object.__setattr__(self, "total_requests", total)
        count = check_number("UnlimitedPacer.count", self.count, "actors", integer=True)
        check_index("UnlimitedPacer.index", self.index, count)

    def global_k(self, j: int) -> int:
        return self.index + j * self.count

    def due_s(self, j: int) -> float:
        return 0.0 if j < self.total_requests else _INF

    def count_due(self, t_s: float) -> int:
        return self.total_requests if t_s >= 0 else 0

    def total(self) -> int:
        return self.total_requests
