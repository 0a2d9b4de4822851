"""One node's windows with their histograms merged: what a node's aggregator sends on.

The driver's cost per window is mostly its histograms (decoding six of them, adding them to
the second's aggregate). A node's aggregator polls that node's senders and hands the driver
the same windows, every counter and map of every actor kept as it was, but with the
histograms of each group of windows that merge together (one second, healthy or
sender-stalled) added into one of them, the group's *carrier*; the others carry none.

Lossless for every group that holds a whole node (a second, a node, the run, healthy and
stalled seconds: what the summary, the per-second frame and the charts read), because
HdrHistograms add exactly and windows merge order-free (``actors/contract.py``). Only one
actor's own latency is given up: the carrier's histograms are its node's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hdrh.histogram import HdrHistogram

from rafale.actors.contract import (
    LATENCIES,
    TAG_LATENCY,
    add_histogram,
    decode,
    encode,
    new_histogram,
)

__all__ = ["carry_histograms"]

_EMPTY = encode(None)


def _group(window: Mapping[str, Any]) -> tuple[int, bool]:
    """The windows whose histograms merge together: one second, stalled or not."""
    return int(window["second"]), bool(window.get("stalled"))


def carry_histograms(windows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``windows`` (one node's, one drain) as new dicts, each group's histograms (the
    contract's ``LATENCIES`` and ``latency_by_tag_us``) merged into the group's first
    window and emptied in the others."""
    out = [dict(window) for window in windows]
    merged: dict[tuple[int, bool], tuple[dict[str, Any], dict[str, HdrHistogram],
                                         dict[str, HdrHistogram]]] = {}
    for window in out:
        key = _group(window)
        if key not in merged:
            merged[key] = (window, {}, {})
        _, hists, tags = merged[key]
        for name in LATENCIES:
            hist = decode(window.get(name))
            window[name] = _EMPTY
            if hist is not None:
                if name in hists:
                    add_histogram(hists[name], hist)
                else:
                    hists[name] = hist
        for tag, encoded in dict(window.get(TAG_LATENCY) or {}).items():
            hist = decode(encoded)
            if hist is not None:
                add_histogram(tags.setdefault(str(tag), new_histogram()), hist)
        if TAG_LATENCY in window:
            window[TAG_LATENCY] = {}
    for carrier, hists, tags in merged.values():
        for name in LATENCIES:
            carrier[name] = encode(hists.get(name))
        if tags:
            carrier[TAG_LATENCY] = {tag: encode(hist) for tag, hist in tags.items()}
    return out
