"""The driver: start a run on Ray, control it, drain its windows, keep and save them.

``start(**options)`` validates the spec, resolves names, connects to Ray, places one
sender per planned CPU, starts them all on one common instant and returns a :class:`Run`
at once. A background thread drains every actor about once a second, tags windows with
``run_id`` and ``node`` and appends them, once, to the run's :class:`WindowLog` (the live
frame, the progress line, the summary and the saved files all read it), and appends a
checkpoint to ``out`` (its cost depends on the windows since the previous one, not on the
run's length). The drain never waits on one actor: each has at most one poll outstanding,
and what answered is collected every second. Each poll renews the actor's lease: an actor
not polled for ``lease_s`` stops sending by itself (fenced), and the driver declares it lost
after ``lease_s`` without an answer (at once when Ray reports its death); the survivors take
its stripe over from a common request boundary, and send the requests of its stripe due
since its last drained second (``gap="catch-up"``) or not (``"skip"``). At the end the
actors are killed (so the next run in the same process gets their CPUs) and the result is
saved.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayError

from rafale.actors.answers import Phase, PollAnswer, SenderStatus
from rafale.actors.checks import check_rate
from rafale.actors.config import ResolveEntry
from rafale.actors.feed import FeedPlan
from rafale.actors.priority import Priority
from rafale.analysis import store
from rafale.analysis.log import WindowLog
from rafale.analysis.outcomes import OutcomeLog, outcome_counts
from rafale.analysis.redact import redact_meta, redact_text
from rafale.analysis.result import Result
from rafale.analysis.summary import summarize
from rafale.analysis.thresholds import ThresholdWatch, evaluate
from rafale.cluster import placement, takeover
from rafale.cluster.meta import Ended, run_meta
from rafale.cluster.options import check_out_writable
from rafale.cluster.progress import Snapshot, snapshot
from rafale.cluster.rate_summary import target_summary
from rafale.cluster.resolve import engine_entries, resolve
from rafale.cluster.spec import RunSpec
from rafale.cluster.takeover import RESTRIPE_AHEAD_S, Silent, StripeLog

__all__ = ["RESTRIPE_AHEAD_S", "Run", "RunResult", "start"]

START_DELAY_S = 0.5          # after every actor answered: time to deliver start() to all
DRAIN_EVERY_S = 1.0
POLL_WAIT_S = 0.5            # how long a drain tick waits for this second's answers
CALL_TIMEOUT_S = 5.0         # control calls and the last drain wait this long at most
END_TICK_S = 0.1             # drain ticks just past the run's planned end...
END_TICKS_FOR_S = 2.0        # ...for this long at most (in-flight requests may take longer)
SILENT_NOTICE_S = 1.5        # an actor silent this long is shown in the progress line
CHECKPOINT_EVERY_S = 5.0
_current: Run | None = None


@dataclass(frozen=True, repr=False)
class RunResult(Result):
    """A finished (or live) run: ``frame()``, ``summary``, ``save(dir)``."""

    def frame(self) -> pd.DataFrame:
        """Per-second totals over actors (as analysis.frames.per_second), from the log."""
        assert self.log is not None
        return self.log.per_second()

    def save(self, directory: str | Path) -> Path:
        """Write this result as a result directory (windows, counts, meta, summary)."""
        assert self.log is not None
        return store.write_tables(directory, *self.log.tables(), self.meta, self.summary)


@dataclass
class _Actor:
    index: int
    handle: Any
    node_id: str
    hostname: str = ""
    ip: str = ""
    pid: int = 0
    libcurl: str = ""
    niceness_started: int = 0
    niceness: int = 0
    start_skew_s: float = 0.0
    alive: bool = True
    state: str = "running"
    in_flight: int = 0
    pending: Any = None           # the outstanding poll (an ObjectRef), if any
    last_answer: float = field(default_factory=time.monotonic)
    last_second: int = -1         # the last second whose window was drained
    awaited: bool = False         # lost but not dead: its answer, if it comes, is kept
    came_back: bool = False

    @classmethod
    def placed(cls, index: int, handle: Any, node_id: str, where: dict[str, Any]) -> _Actor:
        """An actor from its where() answer (see SenderActor.where)."""
        return cls(index, handle, str(where.get("node_id") or node_id),
                   str(where.get("hostname", "")), str(where.get("ip", "")),
                   int(where.get("pid", 0)), str(where.get("libcurl", "")),
                   int(where.get("niceness_started", 0)), int(where.get("niceness", 0)))

    def info(self) -> dict[str, Any]:
        return {"actor": self.index, "node": self.node_id, "hostname": self.hostname,
                "ip": self.ip, "pid": self.pid, "libcurl": self.libcurl,
                "niceness_started": self.niceness_started, "niceness": self.niceness,
                "start_skew_s": self.start_skew_s}

    def warning(self) -> str:
        """The line to show when this actor runs above niceness 0, else ""."""
        who = f"actor {self.index} on host {self.hostname or self.ip or self.node_id[:12]}"
        return Priority(self.niceness_started, self.niceness).warning(who)


class Run:
    """A running (then finished) run. Control calls go to every live actor."""

    def __init__(self, spec: RunSpec, actors: list[_Actor], start_at_s: float,
                 entries: tuple[ResolveEntry, ...], node_infos: list[dict[str, Any]],
                 on_progress: Callable[[Snapshot], None] | None = None,
                 feed_plan: FeedPlan | None = None) -> None:
        self.spec = spec
        self._feed_plan = feed_plan  # holds the feed's chunks in Ray's object store
        self.outcomes = OutcomeLog() if feed_plan is not None and feed_plan.once else None
        self._outcomes_final: pa.Table | None = None
        once_rows = feed_plan.rows if feed_plan is not None and feed_plan.once else 0
        self._reported = np.zeros(once_rows, bool)  # rows with an outcome (or handed over)
        # Stripes over time: (first row, actor indices by stripe position), so that every
        # row has one owner; the driver's copy of the schedule chooses the row boundary.
        self._stripes = StripeLog([a.index for a in actors])
        self._schedule = spec.engine_schedule()[0]
        self._paused_s = 0.0
        self._paused_at: float | None = None
        self._resent = 0
        self._answers: dict[str, str] = {}  # status -> first answer body (keep_answers)
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.start_at_s = start_at_s
        self.on_progress = on_progress
        self._actors = actors
        self._entries = entries
        self._node_infos = node_infos
        self.log = WindowLog(unsaved=spec.out is not None)
        self._watch = ThresholdWatch(spec.thresholds)
        self.log.on_seal = self._watch.add_second
        self._checkpoints = store.Checkpoints(spec.out) if spec.out else None
        self._lost: list[dict[str, Any]] = []
        self._lost_nodes: list[str] = []
        self._notes: list[str] = []
        self.warnings = tuple(w for w in (a.warning() for a in actors) if w)
        self._ended: Ended | None = None
        self._ended_at_s: float | None = None
        self._paused = False
        self._abort = threading.Event()
        self._done = threading.Event()
        self._result: RunResult | None = None
        self.save_error: str | None = None  # why the final save to ``out`` failed
        self._thread = threading.Thread(target=self._drain_loop, daemon=True,
                                        name=f"rafale-drain-{self.run_id}")

    def __repr__(self) -> str:
        state = self._state()
        return (f"Run({self.run_id!r}, {len(self._actors)} actors, {state}, "
                f"{len(self.log)} windows)")

    # ----- views -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def elapsed_s(self) -> float:
        return max(0.0, time.time() - self.start_at_s)

    def windows(self) -> pd.DataFrame:
        """Every window drained so far, one row per actor × second (no maps)."""
        return self.log.tables()[0].to_pandas()

    def frame(self) -> pd.DataFrame:
        """Live per-second DataFrame merged over actors, from the windows drained so far."""
        return self.log.per_second()

    def _state(self) -> str:
        return str(self._ended) if self._ended else ("paused" if self._paused else "running")

    @property
    def actors(self) -> tuple[dict[str, Any], ...]:
        """Each actor as meta.json shows it (actor, node, hostname, ip, pid, ...) and
        whether it is still alive (not lost)."""
        return tuple({**a.info(), "alive": a.alive} for a in self._actors)

    def snapshot(self) -> Snapshot:
        state = self._state()
        return snapshot(self.log, elapsed_s=self.elapsed_s, total_s=self.spec.run_s,
                        state=state, actors_alive=self._alive_count(),
                        actors_total=len(self._actors),
                        warnings=self.warnings + self._silent_warnings(),
                        rows=(None if self.outcomes is None or self.spec.feed is None
                              else (self.outcomes.rows, self.spec.feed.rows)))

    def _silent_warnings(self) -> tuple[str, ...]:
        """A line per live actor not heard from for SILENT_NOTICE_S (its lease running)."""
        now = time.monotonic()
        return tuple(
            f"actor {a.index} on {a.hostname or a.ip or a.node_id[:12]}: no answer for "
            f"{now - a.last_answer:.0f} s (lost after {self.spec.lease_s:g} s)"
            for a in self._actors if a.alive and now - a.last_answer >= SILENT_NOTICE_S)

    def summary(self) -> dict[str, Any]:
        """The summary so far, from the log's running aggregates, with the target (and the
        feed's outcomes when it is sent once)."""
        total = self.log.total()
        summary = summarize(total)
        summary["target"] = target_summary(self.spec, summary, self.log.per_second())
        if self.spec.thresholds:
            results = evaluate(self.spec.thresholds, total, self._watch.failed_windows)
            summary["thresholds"] = results
            summary["thresholds_passed"] = all(r["passed"] for r in results)
        if self._answers:
            summary["answers"] = dict(self._answers)
        if self._lost:
            summary["lost"] = [dict(x) for x in self._lost]
        feed = self.spec.feed
        if feed is not None:
            summary["feed"] = feed.summary(self.spec.feed_mode)
            if self.outcomes is not None:
                final = self._outcomes_final
                counts = outcome_counts(final if final is not None else self.outcomes.table())
                if final is None:
                    counts["pending"] = feed.rows - self.outcomes.rows
                summary["feed"]["outcomes"] = counts
                summary["feed"]["delivery"] = ("at-least-once (resend_unknown)"
                                               if self.spec.resend_unknown else "at-most-once")
                summary["feed"]["resent_unknown"] = self._resent
        return summary

    def result(self, summary: dict[str, Any] | None = None) -> RunResult:
        """The result so far (final once the run is done)."""
        if self._result is not None:
            return self._result
        windows, counts = self.log.tables()
        return RunResult(windows=windows.to_pandas(), counts=counts.to_pandas(),
                         meta=redact_meta(self.meta()),
                         summary=summary if summary is not None else self.summary(),
                         log=self.log, outcomes=self._outcomes_final,
                         path=Path(self.spec.out) if self.spec.out else None)

    # ----- control -----------------------------------------------------------------------

    def _broadcast(self, method: str, *args: Any) -> None:
        """Call every live actor; wait (at most CALL_TIMEOUT_S in all) only for those that
        answered lately: a silent one is left to its lease and the drain loop."""
        now = time.monotonic()
        refs = [(getattr(a.handle, method).remote(*args), now - a.last_answer < SILENT_NOTICE_S)
                for a in self._actors if a.alive]
        waited = [ref for ref, answering in refs if answering]
        if waited:
            ray.wait(waited, num_returns=len(waited), timeout=CALL_TIMEOUT_S)

    def pause(self) -> None:
        """Stop sending at once; the schedule freezes (no burst after resume)."""
        self._paused = True
        if self._paused_at is None:
            self._paused_at = time.time()
        self._broadcast("pause")

    def resume(self) -> None:
        self._paused = False
        if self._paused_at is not None:
            self._paused_s += time.time() - self._paused_at
            self._paused_at = None
        self._broadcast("resume")

    def _sched_now(self) -> float:
        """Schedule seconds now (the run's clock less the time paused), as the actors see it."""
        now = self._paused_at if self._paused_at is not None else time.time()
        return max(0.0, now - self.start_at_s - self._paused_s)

    def set_rate(self, rate_per_s: float) -> None:
        """The global target rate from now on (constant), shared by the live actors."""
        rate = check_rate(rate_per_s)
        if self._schedule is not None:
            self._schedule = self._schedule.with_rate_from(self._sched_now(), rate)
        self._broadcast("set_rate", rate)
        if self._lost:
            self._restripe()
        self._notes.append(f"set_rate {rate:g} at {self.elapsed_s:.1f} s")

    def stop(self) -> None:
        """End early; in-flight requests finish and everything measured is kept."""
        if self._ended is None:
            self._ended = Ended.STOPPED
        self._broadcast("stop")

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
        self._broadcast("stop")
        self._abort.set()
        self._done.wait(3 * CALL_TIMEOUT_S)

    def watch(self, every_s: float = 1.0, rows: int = 10) -> RunResult:
        """In a notebook: refresh the progress line and the last seconds until the end."""
        from rafale.cluster.progress import watch

        try:
            watch(self, every_s, rows)
        except KeyboardInterrupt:
            self._interrupt()
        return self.result()

    # ----- the drain thread --------------------------------------------------------------

    def _check_thresholds(self) -> None:
        """Stop the run when an ``:abort`` threshold has failed (after its grace)."""
        if not any(t.abort for t in self.spec.thresholds) or self._ended is not None:
            return
        elapsed = self.elapsed_s
        self._watch.check_total(self.log.total(), elapsed)
        reason = self._watch.abort_reason(elapsed)
        if reason is not None:
            self._notes.append(f"stopped early: {reason}")
            self._ended = Ended.THRESHOLD_FAILED
            self._broadcast("stop")

    def _alive_count(self) -> int:
        return sum(a.alive for a in self._actors)

    def _drain_loop(self) -> None:
        next_checkpoint = time.monotonic() + CHECKPOINT_EVERY_S
        next_report = 0.0
        try:
            while not self._abort.is_set():
                tick = time.monotonic()
                self._poll()
                if tick >= next_report:  # once a second, also while ticks come faster
                    next_report = tick + DRAIN_EVERY_S - END_TICK_S
                    self._report()
                    self._check_thresholds()
                live = [a for a in self._actors if a.alive]
                if not live or all(a.state == Phase.DONE for a in live):
                    break
                if self._checkpoints and time.monotonic() >= next_checkpoint:
                    began = time.monotonic()
                    try:
                        self._checkpoint()
                    except Exception as exc:  # noqa: BLE001 - the run goes on; final save retries
                        note = f"checkpoint to {self.spec.out} failed: {exc!r}"
                        if note not in self._notes:
                            self._notes.append(note)
                    spent = time.monotonic() - began
                    next_checkpoint = time.monotonic() + max(CHECKPOINT_EVERY_S, 10 * spent)
                self._abort.wait(max(0.0, self._next_tick(tick) - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - the run must still end and save
            self._notes.append(f"driver error: {exc!r}")
            self._ended = self._ended or Ended.DRIVER_ERROR
        finally:
            self._finish()

    def _next_tick(self, tick: float) -> float:
        """A second after ``tick``; near the run's planned end, just after it and then
        every END_TICK_S for END_TICKS_FOR_S, so that the run ends when its actors do, not
        up to a second later."""
        left_s = self.spec.run_s - self._sched_now()
        if self._paused_at is not None or not -END_TICKS_FOR_S < left_s < DRAIN_EVERY_S:
            return tick + DRAIN_EVERY_S
        return min(tick + DRAIN_EVERY_S, time.monotonic() + max(left_s, 0.0) + END_TICK_S)

    def _poll(self) -> None:
        """One drain tick: a poll to every actor without one outstanding, then what answered
        within POLL_WAIT_S; losses by Ray's word, node death or lease expiry."""
        watched = [a for a in self._actors if a.alive or a.awaited]
        for actor in watched:
            if actor.pending is None:
                actor.pending = actor.handle.poll.remote()
        drained, losses = self._collect(watched, POLL_WAIT_S)
        self.log.append(drained)
        now = time.monotonic()
        lease_s = self.spec.lease_s
        losing = {id(a) for a, _ in losses}
        silent = {a.index: a for a in self._actors if a.alive and id(a) not in losing
                  and now - a.last_answer >= SILENT_NOTICE_S}
        if silent:
            quiet = [Silent(a.index, a.node_id, now - a.last_answer) for a in silent.values()]
            losses += [(silent[index], why) for index, why
                       in takeover.silent_losses(quiet, lease_s, placement.alive_node_ids())]
        if losses:
            self._lose_all(losses)

    def _collect(self, watched: list[_Actor], wait_s: float
                 ) -> tuple[list[dict[str, Any]], list[tuple[_Actor, tuple[str, str]]]]:
        """The answers of these actors' outstanding polls within ``wait_s``: windows to
        append, and losses (Ray reports the actor dead, or it fenced itself)."""
        ready = set(ray.wait([a.pending for a in watched], num_returns=len(watched),
                             timeout=wait_s)[0]) if watched else set()
        drained: list[dict[str, Any]] = []
        losses: list[tuple[_Actor, tuple[str, str]]] = []
        for actor in watched:
            if actor.pending not in ready:
                continue
            ref, actor.pending = actor.pending, None
            try:
                answer: PollAnswer = ray.get(ref, timeout=0)
            except ActorUnavailableError:
                continue  # unreachable for now: asked again next tick, the lease decides
            except RayActorError as exc:
                actor.awaited = False
                if actor.alive:
                    losses.append((actor, ("ray", f"died: {type(exc).__name__} (Ray "
                                                  "reported its death)")))
                continue
            except RayError as exc:  # the call failed on the actor: asked again next tick
                note = f"actor {actor.index}: poll failed ({type(exc).__name__})"
                if note not in self._notes:
                    self._notes.append(note)
                continue
            drained += self._take(actor, answer)
            fenced = answer["status"].get("fenced")
            if fenced and actor.alive:
                losses.append((actor, ("fenced", f"fenced itself at {fenced['at_s']:.1f} s: "
                                                 f"{fenced['why']}")))
        return drained, losses

    def _take(self, actor: _Actor, answer: PollAnswer) -> list[dict[str, Any]]:
        """One poll's answer: outcomes kept, status noted; its windows returned tagged."""
        windows = self._tag(actor, answer["windows"])
        status = answer["status"]
        if answer.get("outcomes") is not None:
            self._add_outcomes(answer["outcomes"])
        actor.last_answer = time.monotonic()
        if windows:
            actor.last_second = max(actor.last_second, max(int(w["second"]) for w in windows))
        actor.state = str(status.get("state", ""))
        actor.in_flight = int(status.get("in_flight", 0))
        actor.start_skew_s = float(status.get("start_skew_s", 0.0))
        if status.get("error"):
            self._notes.append(f"actor {actor.index}: {status['error']}")
        if not actor.alive:
            self._came_back(actor, status)
        return windows

    def _came_back(self, actor: _Actor, status: SenderStatus) -> None:
        """A lost (not dead) actor answered: stop it, keep its windows, record it."""
        if not actor.came_back:
            actor.came_back = True
            actor.handle.stop.remote()
            entry = next(x for x in reversed(self._lost) if x["actor"] == actor.index)
            entry["came_back_at_s"] = round(self.elapsed_s, 3)
            fenced = entry["fenced"] = status.get("fenced")
            self._notes.append(
                f"actor {actor.index} answered again at {self.elapsed_s:.1f} s after it was "
                f"lost; " + (f"it had stopped sending by its lease at {fenced['at_s']:.1f} s"
                             if fenced else "it was stopped") + "; its windows are kept")
        if actor.state == Phase.DONE:
            actor.awaited = False  # everything it measured is drained

    def _add_outcomes(self, columns: dict[str, list[Any]] | None) -> None:
        """Rows an actor finished, as rows of the feed's source (they differ after only)."""
        feed = self.spec.feed
        if not columns or not columns["row"] or self.outcomes is None or feed is None:
            return
        rows = np.asarray(columns["row"], dtype=np.int64)
        self._reported[rows] = True
        self.outcomes.append({**columns, "row": feed.source_rows(rows)}, feed.tag_names(rows))

    def _tag(self, actor: _Actor, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The actor's drained windows with run_id and node added."""
        for window in windows:
            window["run_id"] = self.run_id
            window["node"] = actor.node_id
        if windows:
            actor.in_flight = int(windows[-1].get("in_flight", actor.in_flight))
        return windows

    def _lose_all(self, losses: list[tuple[_Actor, tuple[str, str]]],
                  restripe: bool = True) -> None:
        """Declare these actors lost (together: one restripe), hand their stripes to the
        live ones and deal with each one's gap."""
        at_s = round(self.elapsed_s, 3)
        now = time.monotonic()
        lost: list[tuple[_Actor, dict[str, Any]]] = []
        alive_nodes = placement.alive_node_ids()
        for actor, (detected, reason) in losses:
            if not actor.alive:
                continue
            actor.alive = False
            actor.awaited = detected not in ("ray", "node")
            entry = {**actor.info(), "at_s": at_s, "in_flight_lost": actor.in_flight,
                     "reason": reason, "detected": detected,
                     "silent_s": round(now - actor.last_answer, 3),
                     "last_drained_second": actor.last_second}
            self._lost.append(entry)
            lost.append((actor, entry))
            if (alive_nodes is not None and actor.node_id not in alive_nodes
                    and actor.node_id not in self._lost_nodes):
                self._lost_nodes.append(actor.node_id)
        if not lost or not self._alive_count() or not restripe:
            return
        boundary = self._restripe()
        for actor, entry in lost:
            entry["takeover_at_s"] = round(self.elapsed_s, 3)
            entry["gap"] = self._gap(actor, boundary)

    def _restripe(self) -> int | None:
        """Share the stripes among the live actors from a common request (and row) boundary
        a little ahead: no actor has reached it, so no request or row is sent twice."""
        live = [a for a in self._actors if a.alive]
        boundary = None
        if self._schedule is not None:
            boundary = takeover.boundary(self._schedule, self._sched_now())
            self._stripes.add(boundary, [a.index for a in live])
        from_row = boundary if self.spec.feed is not None else None
        for position, actor in enumerate(live):
            actor.handle.set_stripe.remote(position, len(live), from_row, boundary)
        if boundary is not None and self.spec.resend_unknown and self.outcomes is not None:
            self._resend_unknown(live, boundary)
        return boundary

    def _gap(self, actor: _Actor, boundary: int | None) -> dict[str, Any]:
        """The lost actor's gap (see takeover.gap), handed to the survivors to catch up."""
        live = [a for a in self._actors if a.alive]
        record, dealt = takeover.gap(self._schedule, self._stripes, actor.index,
                                     actor.last_second, self._paused_s, self._sched_now(),
                                     boundary, self.spec.gap, len(live))
        for survivor, share in zip(live, dealt, strict=True):
            if share:
                survivor.handle.catch_up.remote(share)
        return record

    def owners(self, rows: int) -> np.ndarray:
        """The actor whose stripe held each of the first ``rows`` feed rows."""
        return self._stripes.owners(rows)

    def _resend_unknown(self, live: list[_Actor], boundary: int) -> None:
        """Hand the rows the lost actors owned below ``boundary`` and never reported to the
        survivors (at-least-once: the lost actor may have sent some of them)."""
        feed = self.spec.feed
        assert feed is not None
        lost = [a.index for a in self._actors if not a.alive]
        rows = takeover.unknown_rows(self.owners(min(boundary, feed.rows)), lost, self._reported)
        self._reported[rows] = True  # handed over once; the survivors report them
        self._resent += int(rows.size)
        for position, actor in enumerate(live):
            share = rows[position::len(live)]
            if share.size:
                actor.handle.add_rows.remote(share.tolist())

    def _report(self) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(self.snapshot())
            except Exception as exc:  # noqa: BLE001 - a display problem must not end the run
                self._notes.append(f"progress display error: {exc!r}")
                self.on_progress = None

    def _finish(self) -> None:
        """End the run; whatever goes wrong, the actors are killed and waiters released."""
        try:
            self._finish_run()
        except Exception as exc:  # noqa: BLE001 - wait() must return, the CPUs be freed
            self._notes.append(f"driver error at the end: {exc!r}")
            self._ended = self._ended or Ended.DRIVER_ERROR
            with contextlib.suppress(Exception):
                placement.kill_all([a.handle for a in self._actors])
        finally:
            self._done.set()

    def _finish_run(self) -> None:
        """The last drain: what was outstanding, then one fresh poll of every actor that
        still answers (at most CALL_TIMEOUT_S for each round in all)."""
        drained: list[dict[str, Any]] = []
        losses: list[tuple[_Actor, tuple[str, str]]] = []
        for _ in range(2):
            watched = [a for a in self._actors if (a.alive or a.awaited)
                       and time.monotonic() - a.last_answer < max(self.spec.lease_s,
                                                                 SILENT_NOTICE_S)]
            for actor in watched:
                if actor.pending is None:
                    actor.pending = actor.handle.poll.remote()
            got, lost = self._collect(watched, CALL_TIMEOUT_S)
            drained += got
            losses += lost
        # Lost in the last drain: recorded (their rows unknown), no one left to take over.
        self._lose_all(losses, restripe=False)
        live = [a for a in self._actors if a.alive]
        self.log.append(drained)
        self._complete_outcomes()
        if self.spec.keep_answers:
            self._collect_answers(live)
        self.log.seal_all()
        placement.kill_all([a.handle for a in self._actors])
        if self._ended is None:
            self._ended = Ended.COMPLETED if live else Ended.ALL_LOST
        self._ended_at_s = time.time()
        summary = self.summary()
        if not summary["accounted"]:
            requests = summary["requests"]
            self._notes.append(
                f"counts do not add up: sent {requests['sent']} != completed "
                f"{requests['completed']} + failed {requests['failed']} + in flight at the end "
                f"{requests['in_flight_end']} (windows of a lost actor are missing)")
        try:
            if self._checkpoints is not None:
                self._checkpoints.finish(*self.log.tables(), self.meta(), summary,
                                         self._outcomes_final)
        except Exception as exc:  # noqa: BLE001 - keep the result in memory at least
            self.save_error = f"saving to {self.spec.out} failed: {exc!r}"
            self._notes.append(self.save_error)
        self._result = self.result(summary)
        self._report()
        self._done.set()

    def _checkpoint(self) -> None:
        """Append the windows drained since the last checkpoint to ``out``."""
        assert self._checkpoints is not None
        outcomes = self.outcomes.take_unsaved() if self.outcomes is not None else None
        self._checkpoints.append(*self.log.take_unsaved(), self.meta(), self.summary(),
                                 outcomes)

    def _collect_answers(self, live: list[_Actor]) -> None:
        """The first kept answer of each status, over the actors (shown once)."""
        for actor in live:
            try:
                found = ray.get(actor.handle.first_answers.remote(), timeout=CALL_TIMEOUT_S)
            except (RayActorError, GetTimeoutError):
                continue
            for code, body in found.items():
                self._answers.setdefault(code, redact_text(body))

    def _complete_outcomes(self) -> None:
        """Every row of a feed sent once gets an outcome: rows nobody reported are unsent,
        or unknown when an actor was lost (it may have sent them)."""
        feed = self.spec.feed
        if self.outcomes is None or feed is None:
            return
        every = np.arange(feed.rows)
        lost = np.asarray([a.index for a in self._actors if not a.alive])
        self._outcomes_final = self.outcomes.complete(
            feed.source_rows(every), feed.tag_names(every), np.isin(self.owners(feed.rows), lost))
        counts = outcome_counts(self._outcomes_final)
        if counts["unknown"]:
            self._notes.append(f"{counts['unknown']} feed rows have an unknown outcome (sent "
                               "by a lost actor or still in flight at the end; not resent)")

    # ----- meta --------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """meta.json content (header values redacted by spec.redacted and store.save)."""
        return run_meta(self.spec, self.run_id, self._entries, self._node_infos,
                        [a.info() for a in self._actors], start_at_s=self.start_at_s,
                        ended=self._ended, ended_at_s=self._ended_at_s,
                        lost=self._lost, lost_nodes=self._lost_nodes, notes=self._notes,
                        warnings=list(self.warnings))


# Names users reach for first, and the option they mean.
_ALIASES = {"url": "urls", "rate": "rate_per_s", "duration": "duration_s", "ramp": "ramp_s",
            "timeout": "timeout_s", "header": "headers", "data": "body",
            "threshold": "thresholds"}


def unknown_option_message(options: dict[str, Any], error: str) -> str:
    """Name each unknown option and the closest valid one ("did you mean urls=?")."""
    valid = list(RunSpec.__dataclass_fields__)
    hints = []
    for name in options:
        if name in valid:
            continue
        close = _ALIASES.get(name) or next(iter(difflib.get_close_matches(name, valid, 1)), None)
        hints.append(f"unknown option {name}=" + (f" (did you mean {close}=?)" if close else ""))
    return ("; ".join(hints) or error) + f"; valid options are RunSpec fields: {', '.join(valid)}"


def start(*, spec: RunSpec | None = None,
          on_progress: Callable[[Snapshot], None] | None = None, **options: Any) -> Run:
    """Validate, resolve, place and start a run; return the :class:`Run` at once.

    ``options`` are RunSpec field names (``urls``, ``rate_per_s``, ``duration_s``, ``http``,
    ``dns``, ``resolve``, ``actors``, ``out``...); with ``spec=`` they override its fields.
    Bad input raises ValueError before Ray starts or any request is sent.
    """
    global _current
    if spec is None:
        try:
            spec = RunSpec(**options)
        except TypeError as exc:
            raise ValueError(unknown_option_message(options, str(exc))) from None
    elif options:
        spec = spec.replace(**options)
    entries = resolve(spec)
    check_out_writable(spec.out)
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
    handles, wheres = placement.place(configs, node_ids)
    try:
        actors = [_Actor.placed(i, h, node_ids[i], w)
                  for i, (h, w) in enumerate(zip(handles, wheres, strict=True))]
        start_at_s = time.time() + START_DELAY_S
        ray.get([h.start.remote(start_at_s) for h in handles],
                timeout=placement.READY_TIMEOUT_S)
    except BaseException:
        placement.kill_all(handles)
        raise
    run = Run(spec, actors, start_at_s, entries, placement.node_infos(node_ids), on_progress,
              feed_plan)
    run._thread.start()
    _current = run
    return run
