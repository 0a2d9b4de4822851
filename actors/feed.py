"""A feed inside a sender: which request row k of the schedule sends, read chunk by chunk.

A **feed** is a table of requests (``FEED_SCHEMA``): request k of the global schedule uses
row k (``once``: each row once, the schedule holds exactly as many requests as rows) or
row k mod rows (``cycle``). The driver (``cluster/feeds.py``) checks and normalizes the
user's table and cuts it into chunks of ``CHUNK_ROWS`` rows; under Ray each chunk is an
object in the object store (``chunks`` holds ObjectRefs), so no actor receives the whole
feed in its config and a survivor can read any stripe it takes over. A reader holds at
most ``KEEP_CHUNKS`` decoded chunks and decodes the next one in a helper thread.

No pycurl, no Ray at import time (Ray is imported lazily to fetch an ObjectRef).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["CHUNK_ROWS", "FEED_MODES", "FEED_SCHEMA", "FeedPlan", "FeedReader", "Row"]

CHUNK_ROWS = 16_384
KEEP_CHUNKS = 4
FEED_MODES = ("cycle", "once")
NO_TAG = -1

# One normalized feed row. method/headers/body null: the run's own; tag: index into the
# run's tags, or -1.
FEED_SCHEMA = pa.schema([
    ("url", pa.string()),
    ("method", pa.string()),
    ("headers", pa.list_(pa.string())),
    ("body", pa.binary()),
    ("tag", pa.int16()),
])

# (url, method or None, ["Name: value", ...] or None, body or None, tag index)
Row = tuple[str, str | None, list[str] | None, bytes | None, int]


@dataclass(frozen=True)
class FeedPlan:
    """What a sender needs to read a feed: where its chunks are, how many rows, the mode.

    ``chunks`` holds pyarrow Tables (in process) or Ray ObjectRefs to them (on Ray);
    ``tags`` names the tag indices.
    """

    chunks: tuple[Any, ...] = field(repr=False)
    rows: int
    mode: str = "cycle"
    tags: tuple[str, ...] = ()
    chunk_rows: int = CHUNK_ROWS

    def __post_init__(self) -> None:
        assert self.mode in FEED_MODES, f"FeedPlan.mode={self.mode!r}"
        assert self.rows > 0 and self.chunk_rows > 0, "a feed has rows"
        assert len(self.chunks) == -(-self.rows // self.chunk_rows), "one chunk per chunk_rows"

    @property
    def once(self) -> bool:
        return self.mode == "once"

    def row_of(self, k: int) -> int:
        """The feed row that global request k sends."""
        return k if self.mode == "once" else k % self.rows


def _fetch(chunk: Any) -> pa.Table:
    if isinstance(chunk, pa.Table | pa.RecordBatch):
        return chunk
    import ray  # lazy: an ObjectRef means we run under Ray

    table = ray.get(chunk)
    assert isinstance(table, pa.Table | pa.RecordBatch)
    return table


def _decode(table: pa.Table | pa.RecordBatch) -> list[Row]:
    columns = [table.column(name).to_pylist() for name in FEED_SCHEMA.names]
    return list(zip(*columns, strict=True))


class FeedReader:
    """Row by row access to a feed; decodes chunks ahead in one helper thread."""

    def __init__(self, plan: FeedPlan) -> None:
        self.plan = plan
        self._chunks: OrderedDict[int, list[Row]] = OrderedDict()
        self._pending: dict[int, Future[list[Row]]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._current = -1
        self._rows: list[Row] = []
        self._base = 0
        self._once, self._total = plan.once, plan.rows

    def __repr__(self) -> str:
        return f"FeedReader({self.plan.rows} rows, {self.plan.mode}, {len(self._chunks)} decoded)"

    def row(self, k: int) -> Row:
        """The request that global request k sends."""
        i = k if self._once else k % self._total
        offset = i - self._base
        if 0 <= offset < len(self._rows):
            return self._rows[offset]
        return self._switch(i // self.plan.chunk_rows)[i % self.plan.chunk_rows]

    def _switch(self, index: int) -> list[Row]:
        rows = self._load(index)
        self._current, self._rows = index, rows
        self._base = index * self.plan.chunk_rows
        after = index + 1
        if after * self.plan.chunk_rows >= self.plan.rows:
            after = 0 if self.plan.mode == "cycle" and index else -1
        if after >= 0:
            self._prefetch(after)
        return rows

    def _load(self, index: int) -> list[Row]:
        with self._lock:
            rows = self._chunks.get(index)
            pending = self._pending.pop(index, None)
        if rows is None:
            rows = pending.result() if pending is not None else _decode(
                _fetch(self.plan.chunks[index]))
            with self._lock:
                self._chunks[index] = rows
                while len(self._chunks) > KEEP_CHUNKS:
                    self._chunks.popitem(last=False)
        return rows

    def _prefetch(self, index: int) -> None:
        with self._lock:
            if index in self._chunks or index in self._pending:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="rafale-feed")
            self._pending[index] = self._pool.submit(
                lambda: _decode(_fetch(self.plan.chunks[index])))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
