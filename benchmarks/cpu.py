"""One CPU method for every external client: its process tree's CPU over a wall-clock window.

A client's main phase is a wall-clock window ``[start, start + duration_s]`` (monotonic
clock). :class:`TreeSampler` is a daemon thread that reads the client's process-tree CPU
(user+system of the process, all its threads, its reaped children and its live descendants,
from /proc through psutil, 10 ms ticks) at the window's two instants, plus every
``interval_s`` as a fallback. When the process exits, the harness adds one last exact sample:
its whole-life CPU (``RUSAGE_CHILDREN`` delta around its wait) at the exit instant.

The window's CPU is ``cpu_at(end) − cpu_at(start)``, where :func:`cpu_at` interpolates
linearly between the samples around an instant (a sample fires a little after its instant)
and holds the last sample after it (a process that has exited uses no more CPU). So a client
measured this way pays for exactly the same wall-clock span as any other, whatever it does
before (start-up, handshakes) or after (teardown, report printing).

:func:`run_tool` runs a command under a sampler: the window starts when a marker line
appears on its output (h2load's "Warm-up phase is over") or ``warmup_s`` after launch.
"""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil

__all__ = ["CpuSample", "CpuWindow", "ToolRun", "TreeSampler", "cpu_at", "run_tool",
           "tree_cpu_s", "window"]


@dataclass(frozen=True)
class CpuSample:
    wall_s: float  # time.monotonic() when read
    cpu_s: float  # cumulative user+system CPU of the tree since launch


@dataclass(frozen=True)
class CpuWindow:
    """CPU over ``[start_s, end_s]`` (monotonic seconds)."""

    start_s: float
    end_s: float
    cpu_s: float
    samples: int

    @property
    def wall_s(self) -> float:
        return self.end_s - self.start_s

    def to_data(self) -> dict[str, Any]:
        return {**asdict(self), "wall_s": self.wall_s}


def cpu_at(samples: Sequence[CpuSample], wall_s: float) -> float:
    """The tree's cumulative CPU at ``wall_s``, linear between the samples around it.

    Before the first sample: the first sample's value; after the last: the last's.
    ``samples`` must be sorted by ``wall_s``.
    """
    if not samples:
        raise ValueError("no CPU samples")
    if wall_s <= samples[0].wall_s:
        return samples[0].cpu_s
    for before, after in zip(samples, samples[1:], strict=False):
        if before.wall_s <= wall_s <= after.wall_s:
            span = after.wall_s - before.wall_s
            if span <= 0:
                return after.cpu_s
            share = (wall_s - before.wall_s) / span
            return before.cpu_s + share * (after.cpu_s - before.cpu_s)
    return samples[-1].cpu_s


def window(samples: Sequence[CpuSample], start_s: float, end_s: float) -> CpuWindow:
    """The CPU used over ``[start_s, end_s]``."""
    if end_s < start_s:
        raise ValueError(f"window ends ({end_s}) before it starts ({start_s})")
    ordered = sorted(samples, key=lambda s: s.wall_s)
    used = cpu_at(ordered, end_s) - cpu_at(ordered, start_s)
    return CpuWindow(start_s, end_s, max(used, 0.0), len(ordered))


def tree_cpu_s(pid: int) -> float | None:
    """User+system CPU of ``pid`` (its threads and reaped children) and its live
    descendants; None once the process is gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            times = process.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            descendants = process.children(recursive=True)
    except psutil.Error:
        return None
    for child in descendants:
        try:
            child_times = child.cpu_times()
        except psutil.Error:
            continue  # exited meanwhile: counted once its parent reaps it
        total += child_times.user + child_times.system
    return float(total)


class TreeSampler:
    """A thread sampling ``pid``'s tree CPU every ``interval_s`` and at marked instants."""

    def __init__(self, pid: int, launched_s: float, interval_s: float = 0.5) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self._samples = [CpuSample(launched_s, 0.0)]  # nothing used before launch
        self._instants: list[float] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=f"cpu-sampler-{pid}",
                                        daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def mark(self, *instants_s: float) -> None:
        """Also sample at these monotonic instants."""
        with self._wake:
            self._instants.extend(instants_s)
            self._wake.notify()

    def stop(self, exit_s: float | None = None, exit_cpu_s: float | None = None) -> list[CpuSample]:
        """Stop sampling; add the exact exit sample when given. The samples, sorted."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join()
        samples = list(self._samples)
        if exit_s is not None and exit_cpu_s is not None:
            samples.append(CpuSample(exit_s, exit_cpu_s))
        return sorted(samples, key=lambda s: s.wall_s)

    def _next_due(self, last_s: float) -> float:
        due = last_s + self.interval_s
        pending = [t for t in self._instants if t > last_s]
        return min([due, *pending])

    def _loop(self) -> None:
        last_s = self._samples[0].wall_s
        while True:
            with self._wake:
                while not self._stopped:
                    wait_s = self._next_due(last_s) - time.monotonic()
                    if wait_s <= 0:
                        break
                    self._wake.wait(wait_s)
                if self._stopped:
                    return
            cpu_s = tree_cpu_s(self.pid)
            last_s = time.monotonic()
            if cpu_s is None:
                return
            self._samples.append(CpuSample(last_s, cpu_s))


@dataclass(frozen=True)
class ToolRun:
    """One external client's run: its output, exit code and CPU figures."""

    output: str
    returncode: int
    launched_s: float
    exited_s: float
    window: CpuWindow  # the main phase
    cpu_s_whole_run: float  # launch .. exit (RUSAGE_CHILDREN delta)

    def cpu_data(self) -> dict[str, Any]:
        return {"cpu_window": self.window.to_data(), "cpu_s_whole_run": self.cpu_s_whole_run,
                "window_starts_after_launch_s": self.window.start_s - self.launched_s,
                "exit_after_window_end_s": self.exited_s - self.window.end_s}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tool(
    command: Sequence[str], *, warmup_s: float, duration_s: float, marker: str | None = None,
    env: Mapping[str, str] | None = None, timeout_s: float | None = None,
    interval_s: float = 0.5,
) -> ToolRun:
    """Run ``command`` (stdout and stderr merged); measure its CPU over the main phase:
    from the first output line containing ``marker`` (or ``warmup_s`` after launch when
    ``marker`` is None) for ``duration_s``. Raises when the command fails or the marker
    never appears."""
    timeout_s = timeout_s if timeout_s is not None else warmup_s + duration_s + 60.0
    lines: list[str] = []
    start_s: float | None = None
    cpu0 = _children_cpu_s()
    launched_s = time.monotonic()
    with subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=None if env is None else dict(env)) as proc:
        assert proc.stdout is not None
        sampler = TreeSampler(proc.pid, launched_s, interval_s).start()
        if marker is None:
            start_s = launched_s + warmup_s
            sampler.mark(start_s, start_s + duration_s)
        watchdog = threading.Timer(timeout_s, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                if start_s is None and marker is not None and marker in line:
                    start_s = time.monotonic()
                    sampler.mark(start_s, start_s + duration_s)
                lines.append(line)
            code = proc.wait()
        finally:
            watchdog.cancel()
    exited_s = time.monotonic()
    whole_s = _children_cpu_s() - cpu0
    samples = sampler.stop(exited_s, whole_s)
    output = "".join(lines)
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {code}:\n{output}")
    if start_s is None:
        raise RuntimeError(f"{' '.join(command)} never printed {marker!r}:\n{output}")
    return ToolRun(output, code, launched_s, exited_s,
                   window(samples, start_s, start_s + duration_s), whole_s)
