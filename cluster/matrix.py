"""The protocol × DNS (× actors) matrix: every combination back to back, then a comparison.

:func:`plan` builds and validates every run spec first (bad input fails before any
traffic), skipping the combinations that cannot work for a URL's scheme with a note
(HTTP/2 and HTTP/3 need https://, h2c needs http://). :func:`run_matrix` runs them one
after the other, each saved in its own subdirectory of ``out``, and writes the
comparison table and charts (analysis.compare) over the runs that were made, and every
cell compared against the first (baseline.md, baseline.csv).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rafale.cluster.meta import Ended
from rafale.cluster.spec import RunSpec, normalize_http
from rafale.cluster.warm import WarmSenders

__all__ = ["Case", "plan", "run_matrix", "split_list"]

_TLS_ONLY = {"2", "3"}
_CLEARTEXT_ONLY = {"2c"}


@dataclass(frozen=True)
class Case:
    """One run of the matrix."""

    label: str
    spec: RunSpec


def split_list(text: str | Sequence[Any], name: str) -> list[str]:
    """``"1.1,2,3"`` -> ["1.1", "2", "3"] (a list passes through); empty is an error."""
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    values = [item.strip() for item in items if item.strip()]
    if not values:
        raise ValueError(f"{name} {text!r} is empty; expected a comma-separated list")
    return values


def fits(url: str, http: str) -> bool:
    """Whether HTTP version ``http`` can be used with the URL's scheme."""
    scheme = urlsplit(url).scheme
    if http in _TLS_ONLY:
        return scheme == "https"
    if http in _CLEARTEXT_ONLY:
        return scheme == "http"
    return True


def plan(base: dict[str, Any], urls: Iterable[str], http_versions: Iterable[str],
         dns_modes: Iterable[str], actors: Iterable[int | str] = ("auto",),
         out: str | Path | None = None) -> tuple[list[Case], list[str]]:
    """Every valid (url, http, dns, actors) combination as a validated Case, plus notes on
    the skipped ones. ``base`` holds the other RunSpec options shared by every run."""
    url_list = list(urls)
    cases: list[Case] = []
    notes: list[str] = []
    for url in url_list:
        scheme = urlsplit(url).scheme
        for http in http_versions:
            normalized = normalize_http(http)
            if not fits(url, normalized):
                notes.append(f"skipped http {http} for {scheme}:// URL {url} "
                             f"({'needs https://' if normalized in _TLS_ONLY else 'needs http://'})")
                continue
            for dns in dns_modes:
                for count in actors:
                    label = f"http{normalized}-{dns}-{count}actors"
                    if len(url_list) > 1:
                        label = f"{scheme}-{label}"
                    target = None if out is None else str(Path(out) / label)
                    spec = RunSpec.parse(**{**base, "urls": (url,), "http": normalized, "dns": dns,
                                      "actors": count, "out": target, "label": label})
                    cases.append(Case(label, spec))
    if not cases:
        raise ValueError("no valid combination to run: " + "; ".join(notes or ["empty lists"]))
    return cases, notes


def run_matrix(cases: Sequence[Case], out: str | Path,
               on_run: Callable[[Case, Any], None] | None = None,
               on_start: Callable[[Case], None] | None = None,
               on_progress: Callable[[Any], None] | None = None,
               metrics_endpoint: Any = None,
               on_baseline: Callable[[Any], None] | None = None,
               ) -> tuple[list[Any], list[Path]]:
    """Run every case back to back; write the comparison and the baseline (every cell
    against the first: analysis/verdict/baseline.py) into ``out``. Returns (results,
    written paths); ``on_baseline`` gets the baseline table written (to print it). Stops
    early (still writing both) when a run is interrupted. ``metrics_endpoint``: one shared
    /metrics for every case (each its labels)."""
    from rafale.analysis import compare
    from rafale.analysis.verdict.baseline import against_first, write_baseline
    from rafale.cluster.run import start

    results: list[Any] = []
    with WarmSenders() as warm:  # one set of senders for every case (cluster/warm.py)
        for case in cases:
            if on_start is not None:
                on_start(case)
            result = start(spec=case.spec, on_progress=on_progress,
                           metrics_endpoint=metrics_endpoint, warm=warm).wait()
            results.append(result)
            if on_run is not None:
                on_run(case, result)
            if result.meta.get("ended") == Ended.INTERRUPTED:
                break
    written = compare.write_comparison(out, results)
    baseline = against_first(results, [case.label for case in cases[: len(results)]])
    if on_baseline is not None:
        on_baseline(baseline)
    return results, written + write_baseline(out, baseline)
