"""The window contract: the one place where a stats window's fields are defined.

A **window** is one actor's stats for one second of the run. The actor sends it to the
driver as a plain dict (``Window.to_data()`` in ``actors/stats.py``); the driver tags it
with ``run_id`` and ``node`` and turns it into Arrow columns once, with :func:`to_batches`.
Everything else (the driver's log, the progress line, the saved Parquet files, the
DataFrames) reads those columns. Imports: stdlib, numpy, hdrh and pyarrow only (no Ray,
no pycurl), so ``analysis`` may import this module on a laptop.

Fields of a window (units in the names where they have one):

=====================  ======  =================================================================
field                  type    meaning
=====================  ======  =================================================================
run_id                 str     the run (added by the driver; "" when not known)
actor                  int     the actor's index in the run (0-based)
node                   str     the Ray node id the actor ran on (added by the driver)
second                 int     whole seconds since the run's common start instant
intended               int     requests of the actor's stripe that fell due in this second
                               (the schedule up to its end, or up to stop())
sent                   int     requests handed to libcurl in this second
completed              int     requests that got an HTTP response in this second (any status)
failed                 int     requests that ended in this second without a response
late                   int     sent requests whose send lag exceeded the run's tolerance
                               (``late_after_s``, 1 ms by default), whatever the cause
dropped                int     requests that fell due but were not sent by the end of the
                               schedule (or stop()): counted in the actor's last window
late_stall             int     late requests that fell due while the sender was stalled: its loop
                               had not turned for longer than ``stall_after_s`` (counted first)
late_cap               int     late requests whose due time found the in-flight cap full
late_connect           int     late requests whose due time found the connect budget spent
                               (``--connect-rate``: no new connection may open yet)
late_loop              int     the other late requests (CPU starvation, a slow loop turn)
retries                int     sent requests that retry a feed row (also counted in ``sent``;
                               a retry takes a slot of the schedule, so the rate holds)
in_flight              int     gauge: requests open at the end of the second
bytes_in               int     response body bytes received in this second
new_connections        int     connections opened in this second
cpu_s                  float   CPU seconds the actor's process used in this second
loops                  int     event-loop turns in this second
runq_wait_us           int     time the sending thread was runnable but waited for a CPU in this
                               second (the kernel's run-queue wait, from
                               ``/proc/self/task/<tid>/schedstat``, read once a second)
thread_cpu_us          int     time the sending thread ran on a CPU in this second (schedstat)
loop_gap_max_us        int     the longest time the loop was not ready to send (it had neither
                               turned nor waited for the network) that ended in this second or
                               was still going at its end; merged by max, not summed
stall_us               int     a stalled second's lost time: the larger of its run-queue wait and
                               its time in loop gaps longer than ``stall_after_s`` (0 otherwise)
stalled                int     1 when this second was sender-stalled (a loop gap longer than
                               ``stall_after_s``, or a run-queue wait above 20 % of the second
                               and above ``stall_after_s``)
niceness               int     the sending thread's niceness (read once a second; merged by max)
status                 map     HTTP status code (as text) -> completed requests
error                  map     "kind:curl_code" (e.g. "timeout:28") -> failed requests
address                map     remote address -> completed requests
version                map     negotiated HTTP version ("1.1", "2", "3") -> completed requests
tag                    map     "tag|status" (e.g. "push.a|201") or "tag|kind:curl_code" ->
                               finished requests of feed rows with that tag
latency_corrected_us   hist    completed requests' latency from the intended send time (µs)
latency_raw_us         hist    completed requests' latency from the actual send time (µs)
latency_failed_us      hist    failed requests, from the intended send time to the failure
                               (µs; a timeout at about the timeout). "All finished" latency
                               is this histogram added to latency_corrected_us
send_lag_us            hist    actual send time minus intended send time of each sent
                               request (µs; open model only: the closed model has no schedule)
connect_us             hist    completed requests that opened a new connection: the time to
                               connect it (TCP connect, plus the TLS or QUIC handshake: libcurl's
                               appconnect time, or its connect time without TLS), in µs
ttfb_us                hist    completed requests' time to first byte: from the actual send time
                               to the first byte of the response (libcurl's starttransfer time,
                               a new connection's connect included), in µs
latency_by_tag_us      map     feed tag -> histogram of its completed requests' latency from
                               the intended send time (µs; feeds with a tag column only)
=====================  ======  =================================================================

A stalled second measures the sender, not the target: what happened in it is the sender's
doing (``actors/health.py`` has the rule).

Histograms are HdrHistograms from 1 µs to 10 min with 3 significant digits, carried as
hdrh's base64 text encoding. How windows merge: counters and maps are summed (the
``in_flight`` gauge too, across actors of one second; over time its peak is what means
something), but the :data:`MAXIMA` (``loop_gap_max_us``, ``niceness``) take the largest;
histograms are added. Merging is lossless and order-free, so percentiles of
any group (a second, an actor, a node, the run) come from the merged histogram, never from
averaging percentiles.

Saved results use two Arrow schemas: :data:`WINDOWS_SCHEMA` (one row per actor × second,
the counters and both encoded histograms) and :data:`COUNTS_SCHEMA` (long form: one row per
actor × second × dimension × key with its count).

Outcomes (feeds sent ``once``): one row per feed row, :data:`OUTCOMES_SCHEMA`:

=====================  ======  =================================================================
row                    int     the feed row (0-based)
tag                    str     its tag ("" without)
outcome                str     ``ok`` (status < 400), ``failed`` (an error or status >= 400),
                               ``unknown`` (sent, no answer known: in flight at the end or on a
                               lost actor), ``unsent`` (never handed to libcurl)
status                 int     HTTP status (0 without a response)
error                  str     "kind:curl_code" of a failure ("" otherwise)
latency_us             int     latency from the intended send time (-1 when not finished)
attempts               int     times the row was sent
address                str     remote address that answered ("" without)
actor                  int     the actor that sent it (-1 when not known)
second                 int     second of the run it finished in (-1 when not finished)
=====================  ======  =================================================================
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from hdrh.histogram import HdrHistogram

__all__ = [
    "CONNECT", "COUNTERS", "COUNTS_SCHEMA", "DIMENSIONS", "GAUGES", "HEALTH", "HIST_HIGHEST_US",
    "FLOAT_DECIMALS", "HIST_LOWEST_US", "MAXIMA", "merge_counter",
    "HIST_SIGNIFICANT_DIGITS", "KEYS", "LATENCIES", "LATENCY_CORRECTED", "LATENCY_FAILED",
    "LATENCY_RAW", "OUTCOMES_SCHEMA", "OUTCOME_FIELDS", "OUTCOME_KINDS", "RATES", "REQUESTS",
    "SEND_LAG", "TAG_LATENCY", "TAG_SEPARATOR", "TTFB", "outcome_of",
    "WINDOWS_SCHEMA", "add_histogram", "clear_histogram", "counts_view", "decode", "encode",
    "new_histogram", "to_batches",
]

# ----- names ------------------------------------------------------------------------------

KEYS: tuple[str, ...] = ("run_id", "actor", "node", "second")
COUNTERS: tuple[str, ...] = ("intended", "sent", "completed", "failed", "late", "dropped",
                             "late_stall", "late_cap", "late_connect", "late_loop", "retries",
                             "in_flight",
                             "bytes_in", "new_connections", "cpu_s", "loops", "runq_wait_us",
                             "thread_cpu_us", "loop_gap_max_us", "stall_us", "stalled",
                             "niceness")
FLOAT_COUNTERS: tuple[str, ...] = ("cpu_s",)
# The counters that count requests (the summary's "requests" table).
REQUESTS: tuple[str, ...] = COUNTERS[:COUNTERS.index("retries") + 1]
# The sender's health in a window (actors/health.py measures it).
HEALTH: tuple[str, ...] = ("runq_wait_us", "thread_cpu_us", "loop_gap_max_us", "stall_us",
                           "stalled", "niceness")
# Counters merged by taking the largest (of actors in a second, of seconds in a run).
MAXIMA: tuple[str, ...] = ("loop_gap_max_us", "niceness")
# The counters read as rates: due (the target), sent, completed (achieved).
RATES: tuple[str, ...] = COUNTERS[:3]
GAUGES: tuple[str, ...] = ("in_flight",)
DIMENSIONS: tuple[str, ...] = ("status", "error", "address", "version", "tag")
TAG_SEPARATOR = "|"  # in a "tag" key, between the tag and the status or error
LATENCY_CORRECTED = "latency_corrected_us"
LATENCY_RAW = "latency_raw_us"
LATENCY_FAILED = "latency_failed_us"
SEND_LAG = "send_lag_us"
CONNECT = "connect_us"
TTFB = "ttfb_us"
LATENCIES: tuple[str, ...] = (LATENCY_CORRECTED, LATENCY_RAW, LATENCY_FAILED, SEND_LAG,
                              CONNECT, TTFB)
TAG_LATENCY = "latency_by_tag_us"  # tag -> encoded histogram (at most 32 tags per run)



# Float counters add rounded to this many decimals (cpu_s: a microsecond), so that a sum
# does not depend on the order windows merge in (float addition is not associative: a
# node's aggregator merging first changed the last digits of a 4,096-sender run's cpu_s).
FLOAT_DECIMALS = 6


def merge_counter(name: str, a: float, b: float) -> float:
    """Two values of a counter merged: the larger of :data:`MAXIMA`, else the sum (of a
    float counter, rounded to :data:`FLOAT_DECIMALS`: the same whatever the order)."""
    if name in MAXIMA:
        return max(a, b)
    return round(a + b, FLOAT_DECIMALS) if name in FLOAT_COUNTERS else a + b


# ----- histograms -------------------------------------------------------------------------

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 600_000_000  # 10 minutes
HIST_SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    """An empty latency histogram of the contract: 1 µs .. 10 min, 3 significant digits."""
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_SIGNIFICANT_DIGITS)


def counts_view(hist: HdrHistogram) -> np.ndarray:
    """hdrh's counts array as a numpy view (no copy)."""
    return np.ctypeslib.as_array(hist.counts)


def _view_ok() -> bool:
    """Check once that hdrh's counts array is a writable uint64 buffer numpy can view."""
    try:
        hist = new_histogram()
        view = counts_view(hist)
        if view.dtype != np.uint64 or view.shape != (hist.counts_len,):
            return False
        view[1] += 1
        ok = hist.counts[1] == 1
        view[1] = 0
        return bool(ok)
    except Exception:  # noqa: BLE001 - any surprise in the internals means: fall back
        return False


VECTOR_OK = _view_ok()
_EMPTY_ENCODED = new_histogram().encode().decode("ascii")


def add_histogram(dst: HdrHistogram, src: HdrHistogram) -> None:
    """dst += src with numpy, keeping min and max exact (hdrh's ``add`` is a Python loop and
    resets min to 0 when one side is empty)."""
    if src.total_count == 0:
        return
    if not VECTOR_OK or dst.counts_len != src.counts_len:
        dst.add(src)
        return
    counts_view(dst)[:] += counts_view(src)
    dst.total_count += src.total_count
    dst.min_value = min(dst.min_value, src.min_value)
    dst.max_value = max(dst.max_value, src.max_value)


def clear_histogram(hist: HdrHistogram) -> None:
    """``hist.reset()`` without its Python loop over ~21k counters."""
    if not VECTOR_OK:
        hist.reset()
        return
    counts_view(hist)[:] = 0
    hist.total_count = 0
    hist.min_value = sys.maxsize
    hist.max_value = 0
    hist.start_time_stamp_msec = sys.maxsize
    hist.end_time_stamp_msec = 0


def encode(hist: HdrHistogram | None) -> str:
    """The contract's text form of a histogram (an empty one for None)."""
    if hist is None or hist.total_count == 0:
        return _EMPTY_ENCODED
    return hist.encode().decode("ascii")


def decode(encoded: str | bytes | None) -> HdrHistogram | None:
    """A histogram from its text form; None when it is empty or missing."""
    if not encoded or encoded == _EMPTY_ENCODED:
        return None
    hist = HdrHistogram.decode(encoded)
    return hist if hist.total_count else None


# ----- Arrow ------------------------------------------------------------------------------

WINDOWS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("actor", pa.int64()), ("node", pa.string()),
     ("second", pa.int64())]
    + [(name, pa.float64() if name in FLOAT_COUNTERS else pa.int64()) for name in COUNTERS]
    + [(name, pa.string()) for name in LATENCIES]
    + [(TAG_LATENCY, pa.map_(pa.string(), pa.string()))]
)
COUNTS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("actor", pa.int64()), ("second", pa.int64()),
     ("dimension", pa.string()), ("key", pa.string()), ("count", pa.int64())]
)

OUTCOMES_SCHEMA = pa.schema(
    [("row", pa.int64()), ("tag", pa.string()), ("outcome", pa.string()),
     ("status", pa.int64()), ("error", pa.string()), ("latency_us", pa.int64()),
     ("attempts", pa.int64()), ("address", pa.string()), ("actor", pa.int64()),
     ("second", pa.int64())]
)
# What a sender reports per finished row, in the order it records them ("actor" last: it
# is added when the rows are drained); the driver adds tag and outcome.
OUTCOME_FIELDS: tuple[str, ...] = ("row", "status", "error", "latency_us", "attempts",
                                   "address", "second", "actor")
OUTCOME_KINDS: tuple[str, ...] = ("ok", "failed", "unknown", "unsent")


def outcome_of(status: int, error: str) -> str:
    """``ok`` for a response below 400, else ``failed`` (an error or status >= 400)."""
    return "ok" if not error and 0 < status < 400 else "failed"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("ascii")
    return str(value)


def to_batches(windows: Iterable[Mapping[str, Any]]) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """Window dicts -> (windows batch, counts batch) in the two schemas: the one conversion.

    ``run_id`` and ``node`` default to "" when the driver did not add them; a missing
    counter is 0 and a missing histogram is empty text.
    """
    items = list(windows)
    columns: dict[str, list[Any]] = {name: [] for name in WINDOWS_SCHEMA.names}
    counts: list[list[Any]] = [[] for _ in COUNTS_SCHEMA.names]
    for window in items:
        run_id = str(window.get("run_id") or "")
        actor, second = int(window["actor"]), int(window["second"])
        columns["run_id"].append(run_id)
        columns["actor"].append(actor)
        columns["node"].append(str(window.get("node") or ""))
        columns["second"].append(second)
        for name in COUNTERS:
            value = window.get(name) or 0
            columns[name].append(float(value) if name in FLOAT_COUNTERS else int(value))
        for name in LATENCIES:
            columns[name].append(_text(window.get(name)))
        columns[TAG_LATENCY].append(list((window.get(TAG_LATENCY) or {}).items()))
        for dimension in DIMENSIONS:
            for key, count in (window.get(dimension) or {}).items():
                for column, value in zip(counts, (run_id, actor, second, dimension, str(key),
                                                  int(count)), strict=True):
                    column.append(value)
    windows_batch = pa.RecordBatch.from_arrays(
        [pa.array(columns[f.name], type=f.type) for f in WINDOWS_SCHEMA], schema=WINDOWS_SCHEMA)
    counts_batch = pa.RecordBatch.from_arrays(
        [pa.array(values, type=f.type) for values, f in zip(counts, COUNTS_SCHEMA, strict=True)],
        schema=COUNTS_SCHEMA)
    return windows_batch, counts_batch
