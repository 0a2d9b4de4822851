"""The live progress line: a :class:`Snapshot` read from the run's window log, and a printer.

The window log keeps running aggregates (the open seconds decoded, the rest merged), so a
snapshot costs the same at second 5 and at second 5,000. :class:`ProgressPrinter` prints one
line per second (in place on a terminal, with rich). Header values never reach this module.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from rafale.actors.contract import LATENCY_CORRECTED, SEND_LAG
from rafale.analysis.aggregate import Aggregate
from rafale.analysis.latency import percentiles
from rafale.analysis.log import WindowLog

__all__ = ["ProgressPrinter", "Snapshot", "format_line", "snapshot", "stalled_actors"]

STALL_SHOWN_S = 3  # an actor stalled this recently is named in the progress line


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
    lag_p99_us: int | None
    sent: int
    completed: int
    failed: int
    late: int
    dropped: int
    in_flight: int
    actors_alive: int
    actors_total: int
    address_share: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    rows_done: int | None = None  # a feed sent once: rows with an outcome, of rows_total
    rows_total: int | None = None
    stalled: tuple[str, ...] = ()  # "actor 0: stalled 2.1 s (run-queue wait 93 %)"


def snapshot(log: WindowLog, *, elapsed_s: float, total_s: float, state: str,
             actors_alive: int, actors_total: int, warnings: tuple[str, ...] = (),
             rows: tuple[int, int] | None = None) -> Snapshot:
    """The progress line's numbers: the latest second every live actor reported, and the
    run's totals so far."""
    shown = log.latest_complete(actors_alive)
    second = log.second(shown) if shown is not None else None
    total = log.total(per_sender=False)  # every second: cheap at thousands of senders
    p50 = p99 = lag = None
    if second is not None:
        p50, p99 = percentiles(second.hists[LATENCY_CORRECTED], (50, 99)).values()
        lag = percentiles(second.hists[SEND_LAG], (99,))[99.0]
    rates = second.counters if second is not None else {}
    addresses = total.maps["address"]
    total_addr = sum(addresses.values())
    counters = total.counters
    return Snapshot(
        elapsed_s=elapsed_s, total_s=total_s, state=state, second=shown,
        target_per_s=float(rates.get("intended", 0)), sent_per_s=float(rates.get("sent", 0)),
        achieved_per_s=float(rates.get("completed", 0)),
        p50_corrected_us=p50, p99_corrected_us=p99, lag_p99_us=lag,
        sent=int(counters["sent"]), completed=int(counters["completed"]),
        failed=int(counters["failed"]), late=int(counters["late"]),
        dropped=int(counters["dropped"]),
        in_flight=log.in_flight(), actors_alive=actors_alive, actors_total=actors_total,
        address_share={a: c / total_addr for a, c in sorted(addresses.items())}
        if total_addr else {},
        warnings=warnings,
        rows_done=None if rows is None else rows[0],
        rows_total=None if rows is None else rows[1],
        stalled=stalled_actors(total),
    )


def stalled_actors(total: Aggregate, recent_s: int = STALL_SHOWN_S) -> tuple[str, ...]:
    """A line per actor stalled in the last ``recent_s`` seconds seen: its stall time so far
    and its run-queue wait in its stalled seconds."""
    if total.seconds is None:
        return ()
    latest = total.seconds[1]
    lines = []
    for actor, stalls in sorted(total.stalls.items()):
        if stalls and max(stalls) > latest - recent_s:
            stall_s = sum(stall for stall, _ in stalls.values()) / 1e6
            wait = sum(wait for _, wait in stalls.values()) / (len(stalls) * 1e6)
            lines.append(f"actor {actor}: stalled {stall_s:.1f} s (run-queue wait {wait:.0%})")
    return tuple(lines)


def _ms(value_us: int | None) -> str:
    return "-" if value_us is None else f"{value_us / 1000:.1f}"


def format_line(s: Snapshot) -> str:
    """One line: elapsed/total, target vs achieved, p50/p99 corrected, errors, late, shares."""
    shares = " ".join(f"{a} {v:.0%}" for a, v in s.address_share.items()) or "-"
    dropped = f"  dropped {s.dropped:,}" if s.dropped else ""
    actors = (f"{s.actors_alive}/{s.actors_total} actors" if s.actors_alive != s.actors_total
              else f"{s.actors_total} actors")
    feed = ("" if s.rows_total is None else
            f"rows {s.rows_done:,}/{s.rows_total:,} ({(s.rows_done or 0) / s.rows_total:.0%})  ")
    stalled = "".join(f"  {line}" for line in s.stalled)
    return (
        f"{s.elapsed_s:5.1f}/{s.total_s:g}s {s.state:<9} {feed}target {s.target_per_s:,.0f}/s "
        f"achieved {s.achieved_per_s:,.0f}/s  p50 {_ms(s.p50_corrected_us)} ms "
        f"p99 {_ms(s.p99_corrected_us)} ms  sent {s.sent:,}  errors {s.failed:,}  late {s.late:,} "
        f"(lag p99 {_ms(s.lag_p99_us)} ms){dropped}  in-flight {s.in_flight:,}  {actors}  "
        f"addresses {shares}{stalled}"
    )


class ProgressPrinter:
    """Print snapshots: in place on a terminal (rich), one line per update otherwise.
    Each warning of the run (e.g. an actor at niceness 15) is printed once, above."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._live: Any = None
        self._warned: set[str] = set()

    def __call__(self, snapshot: Snapshot) -> None:
        for warning in snapshot.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                if self._live is not None:
                    self._live.console.print(f"warning: {warning}")
                else:
                    print(f"warning: {warning}", file=self.stream, flush=True)
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

