"""The live progress line: cheap running aggregates of drained windows, and a printer.

:class:`Tracker` is fed every drained window by the driver and keeps only counters, the
per-address totals and the histograms of the last few seconds, so a snapshot costs the
same at second 5 and at second 5,000. :class:`ProgressPrinter` prints one line per
second (in place on a terminal, with rich). Header values never reach this module.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from hdrh.histogram import HdrHistogram

__all__ = ["ProgressPrinter", "Snapshot", "Tracker", "format_line", "watch"]

_KEEP_SECONDS = 5
_COUNTERS = ("intended", "sent", "completed", "failed", "late")


@dataclass(frozen=True)
class Snapshot:
    """What the progress line shows; rates are from the last second all actors reported."""

    elapsed_s: float
    total_s: float
    state: str
    second: int | None
    target_per_s: float
    sent_per_s: float
    achieved_per_s: float
    p50_corrected_us: int | None
    p99_corrected_us: int | None
    sent: int
    completed: int
    failed: int
    late: int
    in_flight: int
    actors_alive: int
    actors_total: int
    address_share: dict[str, float] = field(default_factory=dict)


@dataclass
class _Second:
    actors: set[int] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    in_flight: int = 0
    corrected: HdrHistogram | None = None


class Tracker:
    """Running totals over the windows drained so far."""

    def __init__(self, total_s: float, actors_total: int) -> None:
        self.total_s = total_s
        self.actors_total = actors_total
        self.totals = dict.fromkeys(_COUNTERS, 0)
        self.addresses: dict[str, int] = {}
        self._seconds: dict[int, _Second] = {}
        self._in_flight: dict[int, int] = {}

    def add(self, windows: Iterable[Mapping[str, Any]]) -> None:
        for window in windows:
            second = self._seconds.setdefault(int(window["second"]), _Second())
            actor = int(window["actor"])
            second.actors.add(actor)
            for name in _COUNTERS:
                value = int(window.get(name, 0) or 0)
                second.counts[name] += value
                self.totals[name] += value
            in_flight = int(window.get("in_flight", 0) or 0)
            second.in_flight += in_flight
            self._in_flight[actor] = in_flight
            for address, count in (window.get("address") or {}).items():
                self.addresses[address] = self.addresses.get(address, 0) + int(count)
            encoded = window.get("latency_corrected_us")
            if encoded:
                if second.corrected is None:
                    second.corrected = HdrHistogram.decode(encoded)
                else:
                    second.corrected.decode_and_add(encoded)
        for old in sorted(self._seconds)[:-_KEEP_SECONDS]:
            del self._seconds[old]

    def _shown_second(self, alive: int) -> int | None:
        """The latest second every live actor reported."""
        complete = [s for s, data in self._seconds.items() if len(data.actors) >= alive]
        if complete:
            return max(complete)
        return max(self._seconds) if self._seconds else None

    def snapshot(self, elapsed_s: float, state: str, actors_alive: int) -> Snapshot:
        shown = self._shown_second(actors_alive)
        data = self._seconds.get(shown) if shown is not None else None
        counts = data.counts if data else dict.fromkeys(_COUNTERS, 0)
        hist = data.corrected if data else None
        p50 = p99 = None
        if hist is not None and hist.get_total_count() > 0:
            p50, p99 = (int(hist.get_value_at_percentile(p)) for p in (50, 99))
        total_addr = sum(self.addresses.values())
        return Snapshot(
            elapsed_s=elapsed_s, total_s=self.total_s, state=state, second=shown,
            target_per_s=float(counts["intended"]), sent_per_s=float(counts["sent"]),
            achieved_per_s=float(counts["completed"]),
            p50_corrected_us=p50, p99_corrected_us=p99,
            sent=self.totals["sent"], completed=self.totals["completed"],
            failed=self.totals["failed"], late=self.totals["late"],
            in_flight=sum(self._in_flight.values()),
            actors_alive=actors_alive, actors_total=self.actors_total,
            address_share={a: c / total_addr for a, c in sorted(self.addresses.items())}
            if total_addr else {},
        )


def _ms(value_us: int | None) -> str:
    return "-" if value_us is None else f"{value_us / 1000:.1f}"


def format_line(s: Snapshot) -> str:
    """One line: elapsed/total, target vs achieved, p50/p99 corrected, errors, late, shares."""
    shares = " ".join(f"{a} {v:.0%}" for a, v in s.address_share.items()) or "-"
    actors = (f"{s.actors_alive}/{s.actors_total} actors" if s.actors_alive != s.actors_total
              else f"{s.actors_total} actors")
    return (
        f"{s.elapsed_s:5.1f}/{s.total_s:g}s {s.state:<9} target {s.target_per_s:,.0f}/s "
        f"achieved {s.achieved_per_s:,.0f}/s  p50 {_ms(s.p50_corrected_us)} ms "
        f"p99 {_ms(s.p99_corrected_us)} ms  sent {s.sent:,}  errors {s.failed:,}  late {s.late:,}  "
        f"in-flight {s.in_flight:,}  {actors}  addresses {shares}"
    )


class ProgressPrinter:
    """Print snapshots: in place on a terminal (rich), one line per update otherwise."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._live: Any = None

    def __call__(self, snapshot: Snapshot) -> None:
        line = format_line(snapshot)
        if not self.live:
            print(line, file=self.stream, flush=True)
            return
        if self._live is None:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._text = Text
            self._live = Live(Text(line), console=Console(file=self.stream),
                              auto_refresh=False, transient=False)
            self._live.start()
        self._live.update(self._text(line), refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def watch(run: Any, every_s: float = 1.0, rows: int = 10) -> None:
    """Notebook display of a running ``cluster.run.Run``: progress line and last seconds."""
    from IPython.display import clear_output, display

    while not run.done:
        clear_output(wait=True)
        print(format_line(run.snapshot()))
        display(run.frame().tail(rows))
        time.sleep(every_s)
