"""The driver: start a run on Ray, control it, and keep and save what it measured.

The driver is in three parts: :class:`Run` here (the handle users hold: frame, summary,
pause, resume, set_rate, stop, wait, live; the drain thread, checkpoints and the end),
:class:`~rafale.cluster.drain.Drain` (every actor's polls and answers, losses, takeover
carried out) and ``cluster/takeover.py`` (who is lost, the boundary, the gap, the rows to
resend: plain functions). They talk to the actors through an
:class:`~rafale.cluster.channel.ActorChannel` (Ray here, in memory in the tests).

``start(**options)`` validates the spec, resolves names, connects to Ray, places one
sender per planned CPU, starts them all on one common instant and returns a :class:`Run`
at once. A background thread drains every actor about once a second into the run's
:class:`WindowLog` (the live frame, the progress line, the summary and the saved files all
read it), and appends a checkpoint to ``out`` (its cost depends on the windows since the
previous one, not on the run's length). Each poll renews the actor's lease: an actor not
polled for ``lease_s`` stops sending by itself (fenced), and the driver declares it lost
after ``lease_s`` without an answer (at once when Ray reports its death); the survivors take
its stripe over from a common request boundary, and send the requests of its stripe due
since its last drained second (``gap="catch-up"``) or not (``"skip"``). At the end the
actors are killed (so the next run in the same process gets their CPUs) and the result is
saved.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import ray

from rafale.actors.checks import check_rate
from rafale.actors.config import ResolveEntry
from rafale.actors.feed import FeedPlan
from rafale.analysis import frames, prometheus, store
from rafale.analysis.redact import redact_meta
from rafale.analysis.result import Result
from rafale.analysis.summary import summarize
from rafale.analysis.thresholds import evaluate
from rafale.cluster import placement
from rafale.cluster.channel import ActorChannel
from rafale.cluster.drain import CALL_TIMEOUT_S, DRAIN_EVERY_S, END_TICK_S, ActorBook, Drain
from rafale.cluster.meta import Ended, new_run_id, run_meta
from rafale.cluster.metrics import MetricsEndpoint
from rafale.cluster.options import check_out_writable
from rafale.cluster.progress import Snapshot, snapshot
from rafale.cluster.rate_summary import target_summary
from rafale.cluster.ray_tree import run_channel
from rafale.cluster.resolve import engine_entries, resolve
from rafale.cluster.spec import RunSpec, unknown_option_message
from rafale.cluster.takeover import RESTRIPE_AHEAD_S
from rafale.cluster.warm import WarmSenders

if TYPE_CHECKING:
    from rafale.analysis.aggregate import Aggregate
    from rafale.cluster.otlp import OtlpExporter

__all__ = ["RESTRIPE_AHEAD_S", "Run", "RunResult", "start"]

START_DELAY_S = 0.5          # after every actor answered: time to deliver start() to all
CHECKPOINT_EVERY_S = 5.0
_current: Run | None = None


@dataclass(frozen=True, repr=False)
class RunResult(Result):
    """A finished (or live) run: ``frame()``, ``summary``, ``save(dir)``."""

    def frame(self) -> pd.DataFrame:
        """Per-second totals over actors (as analysis.frames.per_second), from the log;
        ``partial`` marks the seconds the schedule did not cover whole."""
        assert self.log is not None
        return frames.per_second(self)

    def save(self, directory: str | Path) -> Path:
        """Write this result as a result directory (windows, counts, meta, summary)."""
        assert self.log is not None
        return store.write_tables(directory, *self.log.tables(), self.meta, self.summary)


class Run:
    """A running (then finished) run: the handle users hold. Control calls go to every live
    actor; a background thread drains them (cluster/drain.py) about once a second."""

    def __init__(self, spec: RunSpec, actors: list[ActorBook], channel: ActorChannel,
                 start_at_s: float, entries: tuple[ResolveEntry, ...],
                 node_infos: list[dict[str, Any]],
                 on_progress: Callable[[Snapshot], None] | None = None,
                 feed_plan: FeedPlan | None = None,
                 metrics: MetricsEndpoint | None = None, *, run_id: str | None = None,
                 aggregation: dict[str, str] | None = None) -> None:
        self.spec = spec
        self._feed_plan = feed_plan  # holds the feed's chunks in Ray's object store
        self.run_id = run_id or new_run_id()
        self.aggregation = aggregation or {"mode": "flat", "why": ""}  # meta.json's
        self.start_at_s = start_at_s
        self.on_progress = on_progress
        once = feed_plan is not None and feed_plan.once
        self._drain = Drain(spec, self.run_id, actors, channel, start_at_s,
                            once_rows=feed_plan.rows if feed_plan is not None and once else None)
        self.log = self._drain.log
        self.outcomes = self._drain.outcomes
        self._entries = entries
        self._node_infos = node_infos
        self._checkpoints = store.Checkpoints(spec.out) if spec.out else None
        self.warnings = tuple(w for w in (a.warning() for a in actors) if w)
        self._ended: Ended | None = None
        self._ended_at_s: float | None = None
        self._abort = threading.Event()
        self._done = threading.Event()
        self._result: RunResult | None = None
        self.save_error: str | None = None  # why the final save to ``out`` failed
        self.metrics = metrics  # the /metrics endpoint (--metrics), if any
        if metrics is not None:
            metrics.attach(self._metric_families)
        self.otlp: OtlpExporter | None = None  # the OTLP/HTTP exporter (--otlp), if any
        self._thread = threading.Thread(target=self._drain_loop, daemon=True,
                                        name=f"rafale-drain-{self.run_id}")

    def __repr__(self) -> str:
        return (f"Run({self.run_id!r}, {len(self._drain.actors)} actors, {self._state()}, "
                f"{len(self.log)} windows)")

    # ----- views -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def elapsed_s(self) -> float:
        return self._drain.elapsed_s()

    def windows(self) -> pd.DataFrame:
        """Every window drained so far, one row per actor × second (no maps)."""
        return self.log.tables()[0].to_pandas()

    def frame(self) -> pd.DataFrame:
        """Live per-second DataFrame merged over actors, from the windows drained so far
        (``partial`` marks the seconds the schedule does not cover whole)."""
        return frames.mark_partial(self.log.per_second(), self.spec.run_s)

    def _state(self) -> str:
        return str(self._ended) if self._ended else (
            "paused" if self._drain.sched.paused else "running")

    @property
    def actors(self) -> tuple[dict[str, Any], ...]:
        """Each actor as meta.json shows it (actor, node, hostname, ip, pid, ...) and
        whether it is still alive (not lost)."""
        return tuple({**a.info(), "alive": a.alive} for a in self._drain.actors)

    def snapshot(self) -> Snapshot:
        drain = self._drain
        return snapshot(self.log, elapsed_s=self.elapsed_s, total_s=self.spec.run_s,
                        state=self._state(), actors_alive=len(drain.live()),
                        actors_total=len(drain.actors),
                        warnings=self.warnings + drain.silent_warnings(),
                        rows=(None if self.outcomes is None or self.spec.feed is None
                              else (self.outcomes.rows, self.spec.feed.rows)))

    def summary(self) -> dict[str, Any]:
        """The summary so far, from the log's running aggregates, with the target (and the
        feed's outcomes when it is sent once)."""
        drain = self._drain
        total = self.log.total()
        summary = summarize(total, self._node_infos)
        summary["target"] = target_summary(self.spec, summary, self.log.per_second())
        if self.spec.thresholds:
            results = evaluate(self.spec.thresholds, total, drain.watch.failed_windows)
            summary["thresholds"] = results
            summary["thresholds_passed"] = all(r["passed"] for r in results)
        if drain.answers:
            summary["answers"] = dict(drain.answers)
        if drain.lost:
            summary["lost"] = [dict(x) for x in drain.lost]
        if self.spec.feed is not None:
            summary["feed"] = drain.feed_summary()
        if self.otlp is not None:
            summary["otlp"] = self.otlp.status()
        return summary

    def result(self, summary: dict[str, Any] | None = None) -> RunResult:
        """The result so far (final once the run is done)."""
        if self._result is not None:
            return self._result
        windows, counts = self.log.tables()
        return RunResult(windows=windows.to_pandas(), counts=counts.to_pandas(),
                         meta=redact_meta(self.meta()),
                         summary=summary if summary is not None else self.summary(),
                         log=self.log, outcomes=self._drain.outcomes_final,
                         path=Path(self.spec.out) if self.spec.out else None)

    def owners(self, rows: int) -> np.ndarray:
        """The actor whose stripe held each of the first ``rows`` feed rows."""
        return self._drain.owners(rows)

    def _live_totals(self) -> tuple[Aggregate, dict[str, Any]]:
        """The merged aggregate so far and the driver's gauges: /metrics and OTLP both."""
        drain, live = self._drain, len(self._drain.live())
        rate = None if drain.schedule is None else drain.schedule.rate_at(drain.sched_now())
        return self.log.total(), {"target_rate_per_s": rate, "in_flight": self.log.in_flight(),
                                  "actors": {"alive": live, "lost": len(drain.actors) - live}}

    def _metric_families(self) -> list[Any]:
        """The run so far as Prometheus metric families (analysis/prometheus.py)."""
        total, gauges = self._live_totals()
        return prometheus.families(
            total, {"run_id": self.run_id, "run": self.spec.label or self.run_id}, **gauges,
            info={"http": self.spec.http, "dns": self.spec.dns, "ended": self._state()})

    def meta(self) -> dict[str, Any]:
        """meta.json content (header values redacted by spec.redacted and store.save)."""
        drain = self._drain
        return run_meta(self.spec, self.run_id, self._entries, self._node_infos,
                        [a.info() for a in drain.actors], start_at_s=self.start_at_s,
                        ended=self._ended, ended_at_s=self._ended_at_s,
                        lost=drain.lost, lost_nodes=drain.lost_nodes, notes=drain.notes,
                        warnings=list(self.warnings), aggregation=self.aggregation)

    # ----- control -----------------------------------------------------------------------

    def pause(self) -> None:
        """Stop sending at once; the schedule freezes (no burst after resume)."""
        self._drain.pause()

    def resume(self) -> None:
        self._drain.resume()

    def set_rate(self, rate_per_s: float) -> None:
        """The global target rate from now on (constant), shared by the live actors."""
        rate = check_rate(rate_per_s)
        self._drain.set_rate(rate)
        self._drain.notes.append(f"set_rate {rate:g} at {self.elapsed_s:.1f} s")

    def stop(self) -> None:
        """End early; in-flight requests finish and everything measured is kept."""
        if self._ended is None:
            self._ended = Ended.STOPPED
        self._drain.broadcast("stop")

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until the run ends and return its result. Ctrl-C stops the actors, keeps
        what was measured (saved when ``out`` is set) and returns the result; a second
        Ctrl-C stops waiting for in-flight requests."""
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        try:
            while not self._done.wait(min(0.2, max(deadline - time.monotonic(), 0.0))):
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"run {self.run_id} still running after {timeout} s")
        except KeyboardInterrupt:
            self._interrupt()
        return self.result()

    def _interrupt(self) -> None:
        self._ended = Ended.INTERRUPTED
        try:
            self.stop()
            self._done.wait(self.spec.timeout_s + 2 * CALL_TIMEOUT_S)
        except KeyboardInterrupt:
            pass
        self._abort.set()
        self._done.wait(3 * CALL_TIMEOUT_S)

    def abort(self) -> None:
        """Stop at once without waiting for in-flight requests; returns when finished."""
        self._ended = self._ended or Ended.ABORTED
        self._drain.broadcast("stop")
        self._abort.set()
        self._done.wait(3 * CALL_TIMEOUT_S)

    def live(self, every_s: float = 1.0, for_s: float | None = None) -> RunResult:
        """Charts in Jupyter, else the progress line, until the end or ``for_s`` (live.py)."""
        from rafale.cluster.live import view

        try:
            view(self, every_s, for_s)
        except KeyboardInterrupt:
            self._interrupt()
        return self.result()

    # ----- the drain thread --------------------------------------------------------------

    def _check_thresholds(self) -> None:
        """Stop the run when an ``:abort`` threshold has failed (after its grace)."""
        if not any(t.abort for t in self.spec.thresholds) or self._ended is not None:
            return
        elapsed = self.elapsed_s
        self._drain.watch.check_total(self.log.total(), elapsed)
        reason = self._drain.watch.abort_reason(elapsed)
        if reason is not None:
            self._drain.notes.append(f"stopped early: {reason}")
            self._ended = Ended.THRESHOLD_FAILED
            self._drain.broadcast("stop")

    def _drain_loop(self) -> None:
        next_checkpoint = time.monotonic() + CHECKPOINT_EVERY_S
        next_report = 0.0
        try:
            while not self._abort.is_set():
                tick = time.monotonic()
                self._drain.tick()
                if tick >= next_report:  # once a second, also while ticks come faster
                    next_report = tick + DRAIN_EVERY_S - END_TICK_S
                    self._report()
                    self._check_thresholds()
                if self._drain.finished():
                    break
                if self._checkpoints and time.monotonic() >= next_checkpoint:
                    began = time.monotonic()
                    try:
                        self._checkpoint()
                    except Exception as exc:  # noqa: BLE001 - the run goes on; final save retries
                        self._drain.note(f"checkpoint to {self.spec.out} failed: {exc!r}")
                    spent = time.monotonic() - began
                    next_checkpoint = time.monotonic() + max(CHECKPOINT_EVERY_S, 10 * spent)
                self._abort.wait(max(0.0, self._drain.next_tick(tick) - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - the run must still end and save
            self._drain.notes.append(f"driver error: {exc!r}")
            self._ended = self._ended or Ended.DRIVER_ERROR
        finally:
            self._finish()

    def _report(self) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(self.snapshot())
            except Exception as exc:  # noqa: BLE001 - a display problem must not end the run
                self._drain.notes.append(f"progress display error: {exc!r}")
                self.on_progress = None

    def _finish(self) -> None:
        """End the run; whatever goes wrong, the actors are killed and waiters released."""
        try:
            self._finish_run()
        except Exception as exc:  # noqa: BLE001 - wait() must return, the CPUs be freed
            self._drain.notes.append(f"driver error at the end: {exc!r}")
            self._ended = self._ended or Ended.DRIVER_ERROR
            with contextlib.suppress(Exception):
                self._drain.channel.kill_all()
        finally:
            self._done.set()

    def _finish_run(self) -> None:
        """The last drain, the end state, the final save and the final result."""
        self._drain.last_drain()
        if self._ended is None:
            self._ended = Ended.COMPLETED if self._drain.live() else Ended.ALL_LOST
        self._ended_at_s = time.time()
        if self.otlp is not None:  # the final values, sent before the summary says how
            self.warnings += self.otlp.final()
        summary = self.summary()
        if not summary["accounted"]:
            requests = summary["requests"]
            self._drain.notes.append(
                f"counts do not add up: sent {requests['sent']} != completed "
                f"{requests['completed']} + failed {requests['failed']} + in flight at the end "
                f"{requests['in_flight_end']} (windows of a lost actor are missing)")
        try:
            if self._checkpoints is not None:
                self._checkpoints.finish(*self.log.tables(), self.meta(), summary,
                                         self._drain.outcomes_final)
        except Exception as exc:  # noqa: BLE001 - keep the result in memory at least
            self.save_error = f"saving to {self.spec.out} failed: {exc!r}"
            self._drain.notes.append(self.save_error)
        self._result = self.result(summary)
        if self.metrics is not None:
            self.metrics.final()  # served until scraped once more, or FINAL_WAIT_S
        self._report()
        self._done.set()

    def _checkpoint(self) -> None:
        """Append the windows drained since the last checkpoint to ``out``."""
        assert self._checkpoints is not None
        outcomes = self.outcomes.take_unsaved() if self.outcomes is not None else None
        self._checkpoints.append(*self.log.take_unsaved(), self.meta(), self.summary(),
                                 outcomes)


def start(*, spec: RunSpec | None = None, on_progress: Callable[[Snapshot], None] | None = None,
          metrics_endpoint: MetricsEndpoint | None = None, warm: WarmSenders | None = None,
          **options: Any) -> Run:
    """Validate, resolve, place and start a run; return the :class:`Run` at once.

    ``options`` are RunSpec field names (``urls``, ``rate_per_s``, ``duration_s``, ``http``,
    ``dns``, ``resolve``, ``actors``, ``out``...); with ``spec=`` they override its fields.
    ``metrics_endpoint``: a shared endpoint (of several runs) to serve on, not ``metrics=``.
    ``warm``: the idle senders of a series (cluster/warm.py): reused, and given this run's
    senders back at its end instead of killing them.
    Bad input raises ValueError before Ray starts or any request is sent.
    """
    global _current
    if spec is None:
        try:
            spec = RunSpec.parse(**options)
        except TypeError as exc:
            raise ValueError(unknown_option_message(options, str(exc))) from None
    elif options:
        spec = spec.replace(**options)
    entries = resolve(spec)
    check_out_writable(spec.out)
    if _current is not None and _current.metrics is not None:
        _current.metrics.stop()  # its port may be this run's
    if spec.insecure:
        warnings.warn("insecure: TLS certificates are NOT verified for this run",
                      stacklevel=2)
    if _current is not None and not _current.done:
        warnings.warn(f"aborting the previous run {_current.run_id} that was still going",
                      stacklevel=2)
        _current.abort()
    placement.connect(spec.address)
    node_ids = placement.plan_actors(spec.actors, spec.reserve_driver_cpu)
    count = len(node_ids)
    handed = engine_entries(spec, entries)
    feed_plan = spec.feed.plan(spec.feed_mode, put=ray.put) if spec.feed is not None else None
    configs = [spec.engine_config(i, count, handed, feed_plan) for i in range(count)]
    handles, wheres = placement.place(configs, node_ids, warm=warm)
    run_id, endpoint, channel = new_run_id(), None, None
    try:  # a busy --metrics port is refused here: before the actors start sending
        channel, aggregation = run_channel(spec.aggregation, handles, node_ids, warm, run_id)
        endpoint = metrics_endpoint or (MetricsEndpoint(spec.metrics) if spec.metrics else None)
        now = time.monotonic()
        actors = [ActorBook.placed(i, node_ids[i], w, now) for i, w in enumerate(wheres)]
        start_at_s = time.time() + START_DELAY_S
        ray.get([h.start.remote(start_at_s) for h in handles],
                timeout=placement.READY_TIMEOUT_S)
    except BaseException:
        channel.kill_all() if channel is not None else placement.kill_all(handles)
        if endpoint is not None:
            endpoint.stop()
        raise
    run = Run(spec, actors, channel, start_at_s, entries, placement.node_infos(node_ids),
              on_progress, feed_plan, endpoint, run_id=run_id, aggregation=aggregation)
    if spec.otlp is not None:  # the OpenTelemetry SDK loads only when asked for
        from rafale.cluster.otlp import OtlpExporter

        run.otlp = OtlpExporter(spec, run.run_id, start_at_s).start(run._live_totals,
                                                                   lambda: run.done)
    run._thread.start()
    _current = run
    return run
