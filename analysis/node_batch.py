"""One node's drained windows, made ready for the driver by that node's aggregator.

Past a few hundred senders the driver's work per window (converting it to Arrow columns,
decoding its histograms into the second's aggregate) is what limits it
(``benchmarks/driver_tree.py``). A node's aggregator does that work beside its senders:
:func:`node_batch` turns the windows of one drain into the two record batches of the
contract (every sender's row whole: its counters, maps and histograms, so per-sender detail
stays in the saved files) and one :class:`~rafale.analysis.aggregate.Aggregate` per second,
the windows of that second already merged. The driver appends the batches as they are and
adds a node's aggregate per second (:meth:`WindowLog.append_node
<rafale.analysis.log.WindowLog.append_node>`): its work per second grows with nodes, not
senders. Lossless: the rows are the windows', and aggregates add exactly (HdrHistograms
add, counters sum or take the maximum, per-sender health is kept per sender).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from rafale.actors.contract import COUNTS_SCHEMA, WINDOWS_SCHEMA, to_batches
from rafale.analysis.aggregate import Aggregate

__all__ = ["NodeBatch", "node_batch"]


@dataclass(frozen=True)
class NodeBatch:
    """A node's windows of one drain: their rows and each second's merged aggregate.
    Picklable (Arrow batches and aggregates), so it travels as one Ray reply."""

    windows: pa.RecordBatch
    counts: pa.RecordBatch
    seconds: dict[int, Aggregate] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.windows.num_rows)

    # Pickled as two Arrow IPC messages read back against the contract's schemas: a
    # pickled record batch rebuilds column by column, ~0.3 ms a reply for the driver.
    def __getstate__(self) -> dict[str, Any]:
        return {"windows": self.windows.serialize().to_pybytes(),
                "counts": self.counts.serialize().to_pybytes(), "seconds": self.seconds}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, schema in (("windows", WINDOWS_SCHEMA), ("counts", COUNTS_SCHEMA)):
            batch = pa.ipc.read_record_batch(pa.py_buffer(state[name]), schema)
            object.__setattr__(self, name, batch)
        object.__setattr__(self, "seconds", state["seconds"])


def node_batch(windows: Sequence[Mapping[str, Any]]) -> NodeBatch:
    """The windows (tagged with run_id and node, in arrival order) as one NodeBatch."""
    windows_batch, counts_batch = to_batches(windows)
    seconds: dict[int, Aggregate] = {}
    for window in windows:
        second = int(window["second"])
        if second not in seconds:
            seconds[second] = Aggregate()
        seconds[second].add_window(window)
    return NodeBatch(windows_batch, counts_batch, dict(sorted(seconds.items())))
