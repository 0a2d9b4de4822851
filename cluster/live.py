"""``run.live()``: watch a run as charts that update every second in Jupyter, or as the
progress line anywhere else.

In an IPython kernel (Jupyter, VS Code, nbclient) the view is a one-line status
(an ipywidgets ``HTML``: elapsed, rate, completed, failed) above the picture of
:mod:`rafale.analysis.live_chart`, redrawn every ``every_s`` from the run's per-second frame.
The picture is an IPython display updated in place (``display_id``), not a widget's output:
a notebook saved from Jupyter or executed by nbclient keeps the last picture as a real cell
output, with the status line as its text, and when the run ends while it is watched the
last picture is drawn after the end, from the run's final frame. Anywhere else (a terminal,
a script) it prints the progress line (:class:`~rafale.cluster.progress.ProgressPrinter`).
It returns when the run ends, or after ``for_s`` seconds while the run goes on; Ctrl-C (a
kernel interrupt) stops the run, as it does in ``run.wait()``.
"""

from __future__ import annotations

import base64
import math
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from rafale.analysis import live_chart, plots
from rafale.analysis.result import Result
from rafale.cluster.progress import ProgressPrinter, Snapshot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from rafale.cluster.run import Run, RunResult

__all__ = ["check_times", "in_kernel", "live", "picture", "status_line", "view"]

POLL_S = 0.1  # how often the wait between two pictures looks whether the run has ended
METADATA_KEY = "rafale_live"  # the picture output's metadata: run_id, updates, final


def live(run: Run, every_s: float = 1.0, for_s: float | None = None) -> RunResult:
    """``rafale.live(run)``: the same as ``run.live(every_s, for_s)``."""
    return run.live(every_s, for_s)


def check_times(every_s: float, for_s: float | None) -> None:
    """Refuse a refresh period that is not > 0 s and a watch length that is negative."""
    if not isinstance(every_s, int | float) or not math.isfinite(every_s) or every_s <= 0:
        raise ValueError(f"every_s must be a number of seconds > 0, not {every_s!r}")
    if for_s is not None and (not isinstance(for_s, int | float) or not for_s >= 0):
        raise ValueError(f"for_s must be None (until the run ends) or a number of seconds "
                         f">= 0, not {for_s!r}")


def status_line(s: Snapshot, summary: Mapping[str, Any] | None = None) -> str:
    """While the run goes, '12.0/30 s · running · rate 498/s (target 500/s) · completed
    5,432 · failed 0': the rates of the latest second every live actor reported, the counts
    so far. Once it has ended, from its ``summary``: how long it sent, its mean rates and its
    final counts."""
    if summary is not None:
        rates = summary["rate_per_s"]
        return (f"ended ({s.state}) after {summary['duration_s']:g} s · mean rate "
                f"{rates['completed']:,.0f}/s (target {rates['intended']:,.0f}/s) · "
                f"completed {s.completed:,} · failed {s.failed:,}")
    rate = "-" if s.second is None else f"{s.achieved_per_s:,.0f}/s"
    return (f"{s.elapsed_s:.1f}/{s.total_s:g} s · {s.state} · rate {rate} "
            f"(target {s.target_per_s:,.0f}/s) · completed {s.completed:,} · "
            f"failed {s.failed:,}")


def title(run: Run) -> str:
    """'quickstart · HTTP/2 · DNS pinned · 2 actors', as the charts of a result say it."""
    return plots.run_title(Result(pd.DataFrame(), pd.DataFrame(), meta=run.meta()))


def picture(run: Run, heading: str, *, final: bool) -> tuple[Figure, str]:
    """The run so far as the live view draws it, and its status line. While the run goes,
    the seconds after the latest one every live actor has reported are left out (a second
    half reported is not a fall in the rate)."""
    shown = run.snapshot()
    frame = run.frame()
    if not final and shown.second is not None:
        frame = frame[frame["second"] <= shown.second]
    status = status_line(shown, run.result().summary if final else None)
    return live_chart.figure(frame, shown.address_share, heading, status), status


def in_kernel() -> bool:
    """True in an IPython kernel (Jupyter, VS Code, nbclient), not in a terminal IPython."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class _View(Protocol):
    def update(self, run: Run, *, final: bool) -> None: ...

    def close(self) -> None: ...


class NotebookView:
    """An ipywidgets status line above a picture, both updated in place; each is displayed
    with a display handle, so that the saved notebook keeps their last values as text."""

    def __init__(self, run: Run) -> None:
        import ipywidgets
        from IPython.display import display

        self.heading = title(run)
        self.status = ipywidgets.Label(value=f"{run.run_id}: starting")
        self.status_handle: Any = display(self.status, display_id=True)
        self.handle: Any = None
        self.updates = 0

    def update(self, run: Run, *, final: bool) -> None:
        from IPython.display import display

        fig, status = picture(run, self.heading, final=final)
        self.updates += 1
        self.status.value = status
        bundle = {"image/png": base64.b64encode(live_chart.png(fig)).decode("ascii"),
                  "text/plain": status}
        metadata = {METADATA_KEY: {"run_id": run.run_id, "updates": self.updates,
                                   "final": final}}
        if self.handle is None:
            self.handle = display(bundle, raw=True, metadata=metadata, display_id=True)
        else:
            self.handle.update(bundle, raw=True, metadata=metadata)

    def close(self) -> None:
        """Display the status again: its saved text (the widget's repr) is then the last."""
        self.status_handle.update(self.status)


class TerminalView:
    """The progress line, in place on a terminal (rich), one line per update otherwise."""

    def __init__(self) -> None:
        self.printer = ProgressPrinter()

    def update(self, run: Run, *, final: bool) -> None:
        self.printer(run.snapshot())

    def close(self) -> None:
        self.printer.close()


def view(run: Run, every_s: float = 1.0, for_s: float | None = None) -> None:
    """Show the run every ``every_s`` until it ends (then once more, from its final frame)
    or until ``for_s`` seconds have passed: the last picture is drawn at the end of the
    watch, even when drawing took longer than the watch (a busy machine)."""
    check_times(every_s, for_s)
    deadline = math.inf if for_s is None else time.monotonic() + for_s
    shown: _View = NotebookView(run) if in_kernel() else TerminalView()
    try:
        while True:
            began = time.monotonic()
            ended = run.done  # read first: a picture drawn after the end is the final one
            shown.update(run, final=ended)
            if ended or began >= deadline:
                return
            next_s = min(time.monotonic() + every_s, deadline)
            while not run.done and time.monotonic() < next_s:
                time.sleep(min(POLL_S, max(next_s - time.monotonic(), 0.0)))
    finally:
        shown.close()
