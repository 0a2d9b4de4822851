"""Recording latencies in bulk: a numpy fold equal to hdrh's ``record_value``.

``HdrHistogram.record_value`` costs ~1.8 µs a value in pure Python; the engine appends raw
µs values to lists and folds them here once per window, with the same bucket arithmetic
as ``hdrh``. The histogram's range, creation, encoding and merging are the window
contract's (``actors/contract.py``).
"""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

from rafale.actors.contract import (
    HIST_HIGHEST_US,
    HIST_LOWEST_US,
    VECTOR_OK,
    counts_view,
    new_histogram,
)


def _indexes(hist: HdrHistogram, values: np.ndarray) -> np.ndarray:
    """hdrh's get_counts_array_index, vectorised (values: int64, 0 <= v < 2**53)."""
    unit = hist.unit_magnitude
    half_mag = hist.sub_bucket_half_count_magnitude
    # bit length of (v | mask) = the exponent of frexp (exact below 2**53).
    pow2ceiling = np.frexp((values | hist.sub_bucket_mask).astype(np.float64))[1]
    bucket = pow2ceiling.astype(np.int64) - (unit + half_mag + 1)
    sub = values >> (bucket + unit)
    return ((bucket + 1) << half_mag) + sub - hist.sub_bucket_half_count


def _vector_ok() -> bool:
    """Check once that the vectorised index arithmetic matches hdrh's own."""
    if not VECTOR_OK:
        return False
    try:
        hist = new_histogram()
        probe = [0, 1, 2, 3, 1000, 2047, 2048, 2049, 4095, 4096, 123_456, 999_999,
                 HIST_HIGHEST_US - 1, HIST_HIGHEST_US]
        probe += [(1 << p) + d for p in range(1, 30) for d in (-1, 0, 1)]
        got = _indexes(hist, np.array(probe, dtype=np.int64)).tolist()
        return got == [hist.get_counts_array_index(v) for v in probe]
    except Exception:  # noqa: BLE001 - any surprise in the internals means: fall back
        return False


VECTOR_FOLD = _vector_ok()


def fold_values(hist: HdrHistogram, values: list[int]) -> None:
    """Record every value (µs, clamped to [1, HIST_HIGHEST_US]) into hist.

    Same result as ``hist.record_value`` for each clamped value, computed with numpy.
    """
    if not values:
        return
    if not VECTOR_FOLD:
        for value in values:
            hist.record_value(min(max(int(value), HIST_LOWEST_US), HIST_HIGHEST_US))
        return
    arr = np.asarray(values, dtype=np.int64)
    np.clip(arr, HIST_LOWEST_US, HIST_HIGHEST_US, out=arr)
    counts = np.bincount(_indexes(hist, arr))
    view = counts_view(hist)
    view[: counts.shape[0]] += counts.astype(np.uint64)
    hist.total_count += arr.shape[0]
    hist.min_value = min(hist.min_value, int(arr.min()))
    hist.max_value = max(hist.max_value, int(arr.max()))
