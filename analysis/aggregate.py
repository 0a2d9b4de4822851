"""A mergeable sum of windows: counters, per-key maps, both latency histograms.

An :class:`Aggregate` is what any group of windows adds up to (one second over actors, one
actor over the run, the whole run). Adding a window decodes its two histograms once and
adds them; aggregates add to each other losslessly. The driver's log, the per-second
frame and the summary are all built from aggregates, so each histogram a window carries
is decoded once on its way through the driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from rafale.actors.contract import (
    COUNTERS,
    DIMENSIONS,
    FLOAT_COUNTERS,
    GAUGES,
    HEALTH,
    LATENCIES,
    LATENCY_CORRECTED,
    MAXIMA,
    TAG_LATENCY,
    add_histogram,
    decode,
    encode,
    merge_counter,
    new_histogram,
)
from rafale.analysis.latency import percentile_label, percentiles, without

FRAME_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)


def _zero_counters() -> dict[str, float]:
    return {name: 0.0 if name in FLOAT_COUNTERS else 0 for name in COUNTERS}


@dataclass(eq=False)
class Aggregate:
    """Sums of windows. ``hists`` holds one merged histogram per latency field."""

    counters: dict[str, float] = field(default_factory=_zero_counters)
    maps: dict[str, dict[str, int]] = field(
        default_factory=lambda: {name: {} for name in DIMENSIONS})
    hists: dict[str, HdrHistogram] = field(
        default_factory=lambda: {name: new_histogram() for name in LATENCIES})
    actors: set[int] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)
    windows: int = 0
    busy: tuple[int, int] | None = None  # first and last second with requests due or sent
    seconds: tuple[int, int] | None = None  # first and last second seen
    # Each actor's latest window: (second, in_flight), for the requests open at the end.
    last: dict[int, tuple[int, int]] = field(default_factory=dict)
    # Feed tag -> merged latency histogram of its completed requests (from intended).
    tag_hists: dict[str, HdrHistogram] = field(default_factory=dict)
    # The sender's health per actor: the HEALTH fields merged over its windows, and
    # "windows"; and each actor's stalled seconds: second -> (stall_us, runq_wait_us).
    health: dict[int, dict[str, int]] = field(default_factory=dict)
    stalls: dict[int, dict[int, tuple[int, int]]] = field(default_factory=dict)
    # The completed requests' latency (from intended) of the stalled windows only: what the
    # summary's "healthy seconds only" row leaves out (None while no window stalled).
    stalled_latency: HdrHistogram | None = None
    # Failures ("kind:curl_code") that ended in a stalled window: the sender's, not the
    # target's, as much as their latency is.
    stalled_errors: dict[str, int] = field(default_factory=dict)
    # Which node each actor ran on (its windows' ``node``): the sender part's per-node detail.
    actor_nodes: dict[int, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"Aggregate(windows={self.windows}, actors={len(self.actors)}, "
                f"sent={self.counters['sent']}, completed={self.counters['completed']})")

    # ----- adding ---------------------------------------------------------------------

    def _span(self, second: int, busy: bool) -> None:
        low, high = self.seconds or (second, second)
        self.seconds = (min(low, second), max(high, second))
        if busy:
            low, high = self.busy or (second, second)
            self.busy = (min(low, second), max(high, second))

    def add_window(self, window: Mapping[str, Any],
                   hists: Sequence[HdrHistogram | None] | None = None) -> None:
        """Add one window dict of the contract (its histograms decoded here unless given)."""
        counters = self.counters
        for name in COUNTERS:
            counters[name] = merge_counter(name, counters[name], window.get(name) or 0)
        for name in DIMENSIONS:
            target = self.maps[name]
            for key, count in (window.get(name) or {}).items():
                key = str(key)
                target[key] = target.get(key, 0) + int(count)
        decoded = hists if hists is not None else [decode(window.get(n)) for n in LATENCIES]
        for name, hist in zip(LATENCIES, decoded, strict=True):
            if hist is not None:
                add_histogram(self.hists[name], hist)
                if name == LATENCY_CORRECTED and window.get("stalled"):
                    self.add_stalled_latency(hist)
        by_tag = window.get(TAG_LATENCY)
        if by_tag:
            for tag, encoded in dict(by_tag).items():
                tag_hist = decode(encoded)
                if tag_hist is not None:
                    add_histogram(self._tag_hist(str(tag)), tag_hist)
        actor, second = int(window["actor"]), int(window["second"])
        self.add_health(actor, second, window)
        if window.get("stalled") and window.get("error"):
            self.add_stalled_errors(window["error"])
        self.actors.add(actor)
        if second >= self.last.get(actor, (-1, 0))[0]:
            self.last[actor] = (second, int(window.get("in_flight") or 0))
        node = str(window.get("node") or "")
        self.nodes.add(node)
        self.actor_nodes[actor] = node
        if window.get("run_id"):
            self.run_ids.add(str(window["run_id"]))
        self.windows += 1
        self._span(int(window["second"]), bool(window.get("sent") or window.get("intended")))

    def add(self, other: Aggregate, *, per_sender: bool = True) -> None:
        """self += other (lossless). With ``per_sender=False`` the per-sender parts (each
        sender's health, latest window, node, and the set of senders) are left out: what
        the progress line needs, cheap at thousands of senders."""
        for name in COUNTERS:
            self.counters[name] = merge_counter(name, self.counters[name],
                                                other.counters[name])
        for name in DIMENSIONS:
            target = self.maps[name]
            for key, count in other.maps[name].items():
                target[key] = target.get(key, 0) + count
        for name in LATENCIES:
            add_histogram(self.hists[name], other.hists[name])
        for tag, hist in other.tag_hists.items():
            add_histogram(self._tag_hist(tag), hist)
        for actor, seconds in other.stalls.items():
            self.stalls.setdefault(actor, {}).update(seconds)
        if other.stalled_latency is not None:
            self.add_stalled_latency(other.stalled_latency)
        self.add_stalled_errors(other.stalled_errors)
        self.nodes |= other.nodes
        self.run_ids |= other.run_ids
        self.windows += other.windows
        if per_sender:
            self._add_per_sender(other)
        for span, busy in ((other.seconds, False), (other.busy, True)):
            if span is not None:
                self._span(span[0], busy)
                self._span(span[1], busy)

    def _add_per_sender(self, other: Aggregate) -> None:
        for actor, sums in other.health.items():
            self._merge_health(actor, sums)
        last = self.last
        for actor, (second, in_flight) in other.last.items():
            if second >= last.get(actor, (-1, 0))[0]:
                last[actor] = (second, in_flight)
        self.actors |= other.actors
        self.actor_nodes.update(other.actor_nodes)

    def add_health(self, actor: int, second: int, window: Mapping[str, Any]) -> None:
        """One window's health fields (also for windows read back from saved files)."""
        values = {name: int(window.get(name) or 0) for name in HEALTH}
        self._merge_health(actor, {**values, "windows": 1})
        if values["stalled"]:
            self.stalls.setdefault(actor, {})[second] = (values["stall_us"],
                                                         values["runq_wait_us"])

    def add_stalled_latency(self, hist: HdrHistogram) -> None:
        """Latencies (from intended) of completed requests in a stalled window."""
        if self.stalled_latency is None:
            self.stalled_latency = new_histogram()
        add_histogram(self.stalled_latency, hist)

    def add_stalled_errors(self, errors: Mapping[str, Any]) -> None:
        """Failures by "kind:curl_code" that ended in a stalled window."""
        for key, count in errors.items():
            self.stalled_errors[str(key)] = self.stalled_errors.get(str(key), 0) + int(count)

    def healthy_latency(self) -> HdrHistogram | None:
        """The completed requests' latency (from intended) in the windows that did not
        stall; None when none stalled (then it is the whole run's)."""
        if self.stalled_latency is None:
            return None
        return without(self.hists[LATENCY_CORRECTED], self.stalled_latency)

    def _merge_health(self, actor: int, values: Mapping[str, int]) -> None:
        sums = self.health.get(actor)
        if sums is None:
            self.health[actor] = dict(values)
            return
        for name, value in values.items():
            sums[name] = int(merge_counter(name, sums[name], value))

    def _tag_hist(self, tag: str) -> HdrHistogram:
        hist = self.tag_hists.get(tag)
        if hist is None:
            hist = self.tag_hists[tag] = new_histogram()
        return hist

    @property
    def in_flight_end(self) -> int:
        """Requests open at the end of each actor's latest window, summed."""
        return sum(in_flight for _, in_flight in self.last.values())

    # ----- shipping (a node's aggregator sends its seconds' aggregates to the driver) -----

    def __getstate__(self) -> dict[str, Any]:
        """Picklable: the histograms (ctypes arrays in hdrh) travel in the contract's text
        form, as windows carry them."""
        state = dict(self.__dict__)
        state["hists"] = self.encoded()
        state["tag_hists"] = {tag: encode(hist) for tag, hist in self.tag_hists.items()}
        if self.stalled_latency is not None:
            state["stalled_latency"] = encode(self.stalled_latency)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["hists"] = {name: decode(text) or new_histogram()
                          for name, text in state["hists"].items()}
        state["tag_hists"] = {tag: decode(text) or new_histogram()
                              for tag, text in state["tag_hists"].items()}
        if state["stalled_latency"] is not None:
            state["stalled_latency"] = decode(state["stalled_latency"]) or new_histogram()
        self.__dict__.update(state)

    def copy(self) -> Aggregate:
        out = Aggregate()
        out.add(self)
        return out

    # ----- reading --------------------------------------------------------------------

    def row(self, pcts: Sequence[float] = FRAME_PERCENTILES) -> dict[str, Any]:
        """Counters, ``actors`` and p50_corrected_us … from the merged histograms."""
        return frame_row(self.counters, self.actors, self.hists, pcts)

    def encoded(self) -> dict[str, str]:
        """The merged histograms in the contract's text form."""
        return {name: encode(self.hists[name]) for name in LATENCIES}


def frame_row(counters: Mapping[str, float], actors: set[int],
              hists: Mapping[str, HdrHistogram], pcts: Sequence[float]) -> dict[str, Any]:
    """One row of a per-group frame: the counters, ``actors`` seen, and percentiles."""
    return {**counters, "actors": len(actors), **percentile_columns(hists, pcts)}


def kind_of(latency_field: str) -> str:
    """'latency_corrected_us' -> 'corrected'."""
    return latency_field.removeprefix("latency_").removesuffix("_us")


def percentile_columns(hists: Mapping[str, HdrHistogram], pcts: Sequence[float]
                       ) -> dict[str, float]:
    """{'p50_corrected_us': …, 'p50_raw_us': …} (NaN where a histogram is empty)."""
    out: dict[str, float] = {}
    for name in LATENCIES:
        values = percentiles(hists[name], pcts)
        for pct in pcts:
            value = values[float(pct)]
            out[f"{percentile_label(pct)}_{kind_of(name)}_us"] = (
                float("nan") if value is None else float(value))
    return out


# The counters that add up over time (every counter but the gauges).
SUMMED: tuple[str, ...] = tuple(name for name in COUNTERS if name not in GAUGES + MAXIMA)
