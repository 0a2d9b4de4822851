"""The driver's window log: every drained window appended once as Arrow columns, plus
running aggregates, so that nothing downstream re-shapes or re-decodes a window.

:meth:`WindowLog.append` converts a drain's windows to one record batch of each schema
(``actors/contract.py``) and adds each window to the aggregate of its second (decoding its
two histograms, once). The last ``open_s`` seconds stay open as decoded aggregates (late
windows of an actor land there); older seconds are sealed: their aggregate is added to the
run's total, and they keep only their frame row (counters and percentiles) and their merged
histograms, encoded. A window arriving for a sealed second is added to both directly.

Readers: :meth:`per_second` (the live frame), :meth:`total` (the summary),
:meth:`second` (the progress line), :meth:`tables` (the saved files) and
:meth:`take_unsaved` (append-only checkpoints). Memory grows by the windows' columns
(a few hundred bytes plus the encoded histograms per window) and one small row per second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from hdrh.histogram import HdrHistogram

from rafale.actors.contract import (
    COUNTERS,
    COUNTS_SCHEMA,
    LATENCIES,
    WINDOWS_SCHEMA,
    add_histogram,
    decode,
    encode,
    merge_counter,
    new_histogram,
    to_batches,
)
from rafale.analysis.aggregate import FRAME_PERCENTILES, Aggregate, frame_row
from rafale.analysis.frames import second_frame
from rafale.analysis.node_batch import NodeBatch

OPEN_SECONDS = 5
_COMPACT_EVERY = 64  # small batches folded into one table every this many appends


@dataclass
class _Sealed:
    """A sealed second: counters, actors seen, merged histograms (encoded), frame row."""

    counters: dict[str, float]
    actors: set[int]
    hists: dict[str, str]
    row: dict[str, Any]

    def hists_decoded(self) -> dict[str, HdrHistogram]:
        return {name: decode(text) or new_histogram() for name, text in self.hists.items()}


class _Column:
    """Record batches of one schema: compacted tables, fresh batches, and the unsaved ones."""

    def __init__(self, schema: pa.Schema, keep_unsaved: bool) -> None:
        self.schema = schema
        self.keep_unsaved = keep_unsaved
        self.tables: list[pa.Table] = []
        self.fresh: list[pa.RecordBatch] = []
        self.unsaved: list[pa.RecordBatch] = []

    def append(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.fresh.append(batch)
        if self.keep_unsaved:
            self.unsaved.append(batch)
        if len(self.fresh) >= _COMPACT_EVERY:
            self.tables.append(pa.Table.from_batches(self.fresh, self.schema).combine_chunks())
            self.fresh = []

    def table(self) -> pa.Table:
        parts = [*self.tables, pa.Table.from_batches(self.fresh, self.schema)]
        return pa.concat_tables(parts).combine_chunks()

    def take_unsaved(self) -> pa.Table:
        table = pa.Table.from_batches(self.unsaved, self.schema)
        self.unsaved = []
        return table


class WindowLog:
    """Append-once columnar log of a run's windows with running per-second aggregates.

    Thread-safe: the driver's drain thread appends while a notebook reads. With
    ``unsaved=True`` (a run that checkpoints) it also keeps what :meth:`take_unsaved` has not
    handed out yet.
    """

    def __init__(self, open_s: int = OPEN_SECONDS, *, unsaved: bool = False) -> None:
        self.open_s = open_s
        self._lock = threading.Lock()
        self._windows = _Column(WINDOWS_SCHEMA, unsaved)
        self._counts = _Column(COUNTS_SCHEMA, unsaved)
        self._open: dict[int, Aggregate] = {}
        self._sealed: dict[int, _Sealed] = {}
        self._total = Aggregate()  # the sealed seconds and late windows
        self._in_flight: dict[int, int] = {}  # the latest gauge of each actor
        self.count = 0
        # Called with each second as it is sealed (e.g. rolling-window thresholds).
        self.on_seal: Callable[[int, Aggregate], None] | None = None

    @classmethod
    def of(cls, windows: Iterable[Mapping[str, Any]]) -> WindowLog:
        """A sealed log of the given windows (tests, saving windows built elsewhere)."""
        log = cls()
        log.append(list(windows))
        log.seal_all()
        return log

    def __repr__(self) -> str:
        return (f"WindowLog({self.count} windows, {len(self._sealed)} sealed and "
                f"{len(self._open)} open seconds)")

    def __len__(self) -> int:
        return self.count

    # ----- writing --------------------------------------------------------------------

    def append(self, windows: Sequence[Mapping[str, Any]]) -> None:
        """Add drained windows (tagged with run_id and node by the driver), once."""
        if not windows:
            return
        windows_batch, counts_batch = to_batches(windows)
        with self._lock:
            self._windows.append(windows_batch)
            self._counts.append(counts_batch)
            for window in windows:
                self._add(window)
            self.count += len(windows)
            self._seal(max(self._open, default=-1) - self.open_s)

    def append_node(self, batch: NodeBatch) -> None:
        """Add one node's windows as its aggregator made them ready
        (``analysis/node_batch.py``): the rows appended as they are, each second's
        aggregate added whole. Nothing here converts or decodes a window, so the driver's
        work grows with nodes, not senders; the log ends the same as with :meth:`append`."""
        if not batch.rows:
            return
        with self._lock:
            self._windows.append(batch.windows)
            self._counts.append(batch.counts)
            for second, agg in sorted(batch.seconds.items()):
                for actor, (_, in_flight) in agg.last.items():
                    self._in_flight[actor] = in_flight
                sealed = self._sealed.get(second)
                if sealed is None:
                    self._opened(second).add(agg)
                else:
                    self._add_sealed(sealed, agg)
            self.count += batch.rows
            self._seal(max(self._open, default=-1) - self.open_s)

    def _add(self, window: Mapping[str, Any]) -> None:
        second = int(window["second"])
        self._in_flight[int(window["actor"])] = int(window.get("in_flight") or 0)
        sealed = self._sealed.get(second)
        if sealed is None:
            self._opened(second).add_window(window)
            return
        late = Aggregate()
        late.add_window(window)
        self._add_sealed(sealed, late)

    def _opened(self, second: int) -> Aggregate:
        """The open second's aggregate (made once: an Aggregate is six histograms)."""
        agg = self._open.get(second)
        if agg is None:
            agg = self._open[second] = Aggregate()
        return agg

    def _add_sealed(self, sealed: _Sealed, agg: Aggregate) -> None:
        """A late window's (or a node's) aggregate for a sealed second: into the total and
        into that second's row."""
        self._total.add(agg)
        for name in COUNTERS:
            sealed.counters[name] = merge_counter(name, sealed.counters[name],
                                                  agg.counters[name])
        sealed.actors |= agg.actors
        merged = sealed.hists_decoded()
        for name in LATENCIES:
            add_histogram(merged[name], agg.hists[name])
        sealed.hists = {name: encode(hist) for name, hist in merged.items()}
        sealed.row = frame_row(sealed.counters, sealed.actors, merged, FRAME_PERCENTILES)

    def _seal(self, before: int) -> None:
        for second in sorted(s for s in self._open if s <= before):
            agg = self._open.pop(second)
            self._total.add(agg)
            if self.on_seal is not None:
                self.on_seal(second, agg)
            self._sealed[second] = _Sealed(dict(agg.counters), set(agg.actors), agg.encoded(),
                                           agg.row(FRAME_PERCENTILES))

    def seal_all(self) -> None:
        """Seal every open second (the run has ended)."""
        with self._lock:
            self._seal(max(self._open, default=-1))

    # ----- reading --------------------------------------------------------------------

    def tables(self) -> tuple[pa.Table, pa.Table]:
        """(windows, counts) tables of every window so far, in arrival order."""
        with self._lock:
            return self._windows.table(), self._counts.table()

    def take_unsaved(self) -> tuple[pa.Table, pa.Table]:
        """(windows, counts) appended since the last call: what a checkpoint writes."""
        with self._lock:
            return self._windows.take_unsaved(), self._counts.take_unsaved()

    def total(self, *, per_sender: bool = True) -> Aggregate:
        """Everything so far, merged (a copy: sealed total plus the open seconds). With
        ``per_sender=False`` without the per-sender parts (``Aggregate.add``): what the
        progress line reads every second, its cost growing with open seconds, not senders."""
        with self._lock:
            out = Aggregate()
            for agg in (self._total, *self._open.values()):
                out.add(agg, per_sender=per_sender)
            return out

    def second(self, second: int) -> Aggregate | None:
        """The aggregate of an open second (a copy), or None."""
        with self._lock:
            agg = self._open.get(second)
            return agg.copy() if agg is not None else None

    def latest_complete(self, actors: int) -> int | None:
        """The latest open second that ``actors`` actors have reported, else the latest one."""
        with self._lock:
            complete = [s for s, agg in self._open.items() if len(agg.actors) >= actors]
            if complete:
                return max(complete)
            return max(self._open, default=None)

    def in_flight(self) -> int:
        """Requests open at the end of each actor's latest window, summed."""
        with self._lock:
            return sum(self._in_flight.values())

    def per_second(self, pcts: Sequence[float] = FRAME_PERCENTILES) -> pd.DataFrame:
        """The per-second frame (as ``frames.per_second``), from the aggregates: sealed
        seconds' rows are reused, open seconds are computed now."""
        with self._lock:
            rows: list[dict[str, Any]] = []
            for second, sealed in self._sealed.items():
                row = (sealed.row if tuple(pcts) == FRAME_PERCENTILES else
                       frame_row(sealed.counters, sealed.actors, sealed.hists_decoded(), pcts))
                rows.append({"second": second, **row})
            for second, agg in self._open.items():
                rows.append({"second": second, **agg.row(pcts)})
        return second_frame(rows, pcts)

