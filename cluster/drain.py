"""The drain: the driver's side of every actor of a run, one tick at a time.

Each :meth:`Drain.tick` asks every watched actor for its windows (at most one poll
outstanding each, so the drain never waits on one actor) and takes what answered within
POLL_WAIT_S: windows tagged with ``run_id`` and ``node`` and appended once to the
:class:`WindowLog`, status noted, feed outcomes kept. An actor is lost when Ray reports it
dead, when it fenced itself, when its node is gone, or after ``lease_s`` without an answer;
the survivors take its stripe over from a common request boundary and get its gap
(``cluster/takeover.py`` decides; this carries it out through an :class:`ActorChannel`).

No thread and no Ray here: the :class:`~rafale.cluster.run.Run` calls ``tick()`` about once
a second and ``last_drain()`` at the end; tests drive it with an in-memory channel and a
fake clock (``tests/cluster/fakechannel.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from rafale.actors.answers import Phase, PollAnswer, SenderStatus
from rafale.actors.priority import Priority
from rafale.actors.schedtime import ScheduleTime
from rafale.analysis.log import WindowLog
from rafale.analysis.outcomes import OutcomeLog, outcome_counts
from rafale.analysis.redact import redact_text
from rafale.analysis.thresholds import ThresholdWatch
from rafale.cluster import takeover
from rafale.cluster.channel import ActorChannel, Answered, Dead, Failed, tag_windows
from rafale.cluster.spec import RunSpec
from rafale.cluster.takeover import Silent, StripeLog

__all__ = ["DRAIN_EVERY_S", "END_TICK_S", "ActorBook", "DriverClock", "Drain", "Loss"]

POLL_WAIT_S = 0.5            # how long a drain tick waits for this second's answers
CALL_TIMEOUT_S = 5.0         # control calls and the last drain wait this long at most
SILENT_NOTICE_S = 1.5        # an actor silent this long is shown in the progress line
DRAIN_EVERY_S = 1.0
END_TICK_S = 0.1             # drain ticks just past the run's planned end...
END_TICKS_FOR_S = 2.0        # ...for this long at most (in-flight requests may take longer)

Loss = tuple["ActorBook", tuple[str, str]]  # an actor and (how it was detected, why)


class DriverClock(Protocol):
    """Wall time (the run's common start is a wall instant) and monotonic time."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


@dataclass
class ActorBook:
    """What the driver knows of one actor: where it runs, and what it last answered."""

    index: int
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
    last_answer: float = 0.0      # monotonic instant of its last answer
    last_second: int = -1         # the last second whose window was drained
    awaited: bool = False         # lost but not dead: its answer, if it comes, is kept
    came_back: bool = False

    @classmethod
    def placed(cls, index: int, node_id: str, where: dict[str, Any], now: float) -> ActorBook:
        """An actor from its where() answer (see SenderActor.where)."""
        return cls(index, str(where.get("node_id") or node_id),
                   str(where.get("hostname", "")), str(where.get("ip", "")),
                   int(where.get("pid", 0)), str(where.get("libcurl", "")),
                   int(where.get("niceness_started", 0)), int(where.get("niceness", 0)),
                   last_answer=now)

    def info(self) -> dict[str, Any]:
        return {"actor": self.index, "node": self.node_id, "hostname": self.hostname,
                "ip": self.ip, "pid": self.pid, "libcurl": self.libcurl,
                "niceness_started": self.niceness_started, "niceness": self.niceness,
                "start_skew_s": self.start_skew_s}

    def where(self) -> str:
        return self.hostname or self.ip or self.node_id[:12]

    def warning(self) -> str:
        """The line to show when this actor runs above niceness 0, else ""."""
        who = f"actor {self.index} on host {self.where()}"
        return Priority(self.niceness_started, self.niceness).warning(who)


class Drain:
    """Every actor of one run as the driver sees it, and what they answered."""

    def __init__(self, spec: RunSpec, run_id: str, actors: list[ActorBook],
                 channel: ActorChannel, start_at_s: float, *, once_rows: int | None = None,
                 clock: DriverClock = time) -> None:
        self.spec = spec
        self.run_id = run_id
        self.actors = actors
        self.channel = channel
        self.clock = clock
        self.start_at_s = start_at_s
        self.sched = ScheduleTime()  # the run's schedule time, on the wall clock
        self.sched.start = start_at_s
        # The driver's copy of the schedule chooses the boundaries; stripes over time say
        # whose every request (and feed row) was.
        self.schedule = spec.engine_schedule()[0]
        self.stripes = StripeLog([a.index for a in actors])
        self.log = WindowLog(unsaved=spec.out is not None)
        self.watch = ThresholdWatch(spec.thresholds)
        self.log.on_seal = self.watch.add_second
        self.outcomes = OutcomeLog() if once_rows is not None else None
        self.outcomes_final: pa.Table | None = None
        self.reported = np.zeros(once_rows or 0, bool)  # rows with an outcome (or handed over)
        self.resent = 0
        self.answers: dict[str, str] = {}  # status -> first answer body (keep_answers)
        self.lost: list[dict[str, Any]] = []
        self.lost_nodes: list[str] = []
        self.notes: list[str] = []

    # ----- time and views ----------------------------------------------------------------

    def elapsed_s(self) -> float:
        return max(0.0, self.clock.time() - self.start_at_s)

    def sched_now(self) -> float:
        """Schedule seconds now (the run's clock less the time paused), as the actors see it."""
        return max(0.0, self.sched.at(self.clock.time()))

    def live(self) -> list[ActorBook]:
        return [a for a in self.actors if a.alive]

    def next_tick(self, tick: float) -> float:
        """A second after ``tick``; near the run's planned end, just after it and then
        every END_TICK_S for END_TICKS_FOR_S, so that the run ends when its actors do, not
        up to a second later (monotonic time)."""
        left_s = self.spec.run_s - self.sched_now()
        if self.sched.paused or not -END_TICKS_FOR_S < left_s < DRAIN_EVERY_S:
            return tick + DRAIN_EVERY_S
        return min(tick + DRAIN_EVERY_S, self.clock.monotonic() + max(left_s, 0.0) + END_TICK_S)

    def finished(self) -> bool:
        """No actor left, or every live one done (everything it measured drained)."""
        live = self.live()
        return not live or all(a.state == Phase.DONE for a in live)

    def note(self, text: str) -> None:
        """A note for meta.json, once."""
        if text not in self.notes:
            self.notes.append(text)

    def silent_warnings(self) -> tuple[str, ...]:
        """A line per live actor not heard from for SILENT_NOTICE_S (its lease running)."""
        now = self.clock.monotonic()
        return tuple(
            f"actor {a.index} on {a.where()}: no answer for {now - a.last_answer:.0f} s "
            f"(lost after {self.spec.lease_s:g} s)"
            for a in self.live() if now - a.last_answer >= SILENT_NOTICE_S)

    # ----- control -----------------------------------------------------------------------

    def broadcast(self, method: str, *args: Any) -> None:
        """Call every live actor; wait (at most CALL_TIMEOUT_S in all) only for those that
        answered lately: a silent one is left to its lease."""
        now = self.clock.monotonic()
        live = self.live()
        self.channel.call_all([a.index for a in live], method, *args,
                              wait_for=[a.index for a in live
                                        if now - a.last_answer < SILENT_NOTICE_S],
                              timeout_s=CALL_TIMEOUT_S)

    def pause(self) -> None:
        self.sched.pause(self.clock.time())
        self.broadcast("pause")

    def resume(self) -> None:
        self.sched.resume(self.clock.time())
        self.broadcast("resume")

    def set_rate(self, rate: float) -> None:
        if self.schedule is not None:
            self.schedule = self.schedule.with_rate_from(self.sched_now(), rate)
        self.broadcast("set_rate", rate)
        if self.lost:
            self.restripe()

    # ----- a tick ------------------------------------------------------------------------

    def tick(self, wait_s: float = POLL_WAIT_S) -> None:
        """A poll to every actor without one outstanding, then what answered within
        ``wait_s``; losses by Ray's word, node death or lease expiry."""
        drained, losses = self._collect([a for a in self.actors if a.alive or a.awaited],
                                        wait_s)
        self.log.append(drained)
        now = self.clock.monotonic()
        losing = {a.index for a, _ in losses}
        silent = {a.index: a for a in self.live() if a.index not in losing
                  and now - a.last_answer >= SILENT_NOTICE_S}
        if silent:
            quiet = [Silent(a.index, a.node_id, now - a.last_answer) for a in silent.values()]
            losses += [(silent[index], why) for index, why in takeover.silent_losses(
                quiet, self.spec.lease_s, self.channel.alive_nodes())]
        if losses:
            self.lose_all(losses)

    def _collect(self, watched: list[ActorBook], wait_s: float
                 ) -> tuple[list[dict[str, Any]], list[Loss]]:
        """Polls to these actors and their answers within ``wait_s``: windows to append,
        and losses (Ray reports the actor dead, or it fenced itself)."""
        for actor in watched:
            self.channel.ask(actor.index)
        replies = self.channel.replies([a.index for a in watched], wait_s) if watched else {}
        for batch in self.channel.node_batches():  # tree mode: each node's, merged there
            self.log.append_node(batch)
        drained: list[dict[str, Any]] = []
        losses: list[Loss] = []
        for actor in watched:
            reply = replies.get(actor.index)
            if isinstance(reply, Dead):
                actor.awaited = False
                if actor.alive:
                    losses.append((actor, ("ray", reply.why)))
            elif isinstance(reply, Failed):
                self.note(f"actor {actor.index}: {reply.why}")
            elif isinstance(reply, Answered):
                drained += self._take(actor, reply.answer, reply.last_second)
                fenced = reply.answer["status"].get("fenced")
                if fenced and actor.alive:
                    losses.append((actor, ("fenced", f"fenced itself at {fenced['at_s']:.1f} "
                                                     f"s: {fenced['why']}")))
        return drained, losses

    def _take(self, actor: ActorBook, answer: PollAnswer, last_second: int = -1
              ) -> list[dict[str, Any]]:
        """One poll's answer: outcomes kept, status noted; its windows returned tagged
        (``last_second``: of the windows its node's aggregator took, in tree mode)."""
        windows = answer["windows"]
        last_second = max(last_second, tag_windows(windows, self.run_id, actor.node_id))
        status = answer["status"]
        if answer.get("outcomes") is not None:
            self._add_outcomes(answer["outcomes"])
        actor.last_answer = self.clock.monotonic()
        actor.last_second = max(actor.last_second, last_second)
        actor.state = str(status.get("state", ""))
        actor.in_flight = int(status.get("in_flight", 0))
        actor.start_skew_s = float(status.get("start_skew_s", 0.0))
        if status.get("error"):
            self.notes.append(f"actor {actor.index}: {status['error']}")
        if not actor.alive:
            self._came_back(actor, status)
        return windows

    def _came_back(self, actor: ActorBook, status: SenderStatus) -> None:
        """A lost (not dead) actor answered: stop it, keep its windows, record it."""
        if not actor.came_back:
            actor.came_back = True
            self.channel.call(actor.index, "stop")
            entry = next(x for x in reversed(self.lost) if x["actor"] == actor.index)
            elapsed = self.elapsed_s()
            entry["came_back_at_s"] = round(elapsed, 3)
            fenced = entry["fenced"] = status.get("fenced")
            self.notes.append(
                f"actor {actor.index} answered again at {elapsed:.1f} s after it was "
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
        self.reported[rows] = True
        self.outcomes.append({**columns, "row": feed.source_rows(rows)}, feed.tag_names(rows))

    # ----- loss and takeover -------------------------------------------------------------

    def lose_all(self, losses: list[Loss], restripe: bool = True) -> None:
        """Declare these actors lost (together: one restripe), hand their stripes to the
        live ones and deal with each one's gap."""
        at_s = round(self.elapsed_s(), 3)
        now = self.clock.monotonic()
        lost: list[tuple[ActorBook, dict[str, Any]]] = []
        alive_nodes = self.channel.alive_nodes()
        for actor, (detected, reason) in losses:
            if not actor.alive:
                continue
            actor.alive = False
            actor.awaited = detected not in ("ray", "node")
            entry = {**actor.info(), "at_s": at_s, "in_flight_lost": actor.in_flight,
                     "reason": reason, "detected": detected,
                     "silent_s": round(now - actor.last_answer, 3),
                     "last_drained_second": actor.last_second}
            self.lost.append(entry)
            lost.append((actor, entry))
            if (alive_nodes is not None and actor.node_id not in alive_nodes
                    and actor.node_id not in self.lost_nodes):
                self.lost_nodes.append(actor.node_id)
        if not lost or not self.live() or not restripe:
            return
        boundary = self.restripe()
        for actor, entry in lost:
            entry["takeover_at_s"] = round(self.elapsed_s(), 3)
            entry["gap"] = self._gap(actor, boundary)

    def restripe(self) -> int | None:
        """Share the stripes among the live actors from a common request (and row) boundary
        a little ahead: no actor has reached it, so no request or row is sent twice."""
        live = self.live()
        boundary = None
        if self.schedule is not None:
            boundary = takeover.boundary(self.schedule, self.sched_now())
            self.stripes.add(boundary, [a.index for a in live])
        from_row = boundary if self.spec.feed is not None else None
        for position, actor in enumerate(live):
            self.channel.call(actor.index, "set_stripe", position, len(live), from_row, boundary)
        if boundary is not None and self.spec.resend_unknown and self.outcomes is not None:
            self._resend_unknown(live, boundary)
        return boundary

    def _gap(self, actor: ActorBook, boundary: int | None) -> dict[str, Any]:
        """The lost actor's gap (see takeover.gap), handed to the survivors to catch up."""
        live = self.live()
        record, dealt = takeover.gap(self.schedule, self.stripes, actor.index,
                                     actor.last_second, self.sched.paused_total,
                                     self.sched_now(), boundary, self.spec.gap, len(live))
        for survivor, share in zip(live, dealt, strict=True):
            if share:
                self.channel.call(survivor.index, "catch_up", share)
        return record

    def owners(self, rows: int) -> np.ndarray:
        """The actor whose stripe held each of the first ``rows`` feed rows."""
        return self.stripes.owners(rows)

    def _resend_unknown(self, live: list[ActorBook], boundary: int) -> None:
        """Hand the rows the lost actors owned below ``boundary`` and never reported to the
        survivors (at-least-once: the lost actor may have sent some of them)."""
        feed = self.spec.feed
        assert feed is not None
        lost = [a.index for a in self.actors if not a.alive]
        rows = takeover.unknown_rows(self.owners(min(boundary, feed.rows)), lost, self.reported)
        self.reported[rows] = True  # handed over once; the survivors report them
        self.resent += int(rows.size)
        for position, actor in enumerate(live):
            share = rows[position::len(live)]
            if share.size:
                self.channel.call(actor.index, "add_rows", share.tolist())

    # ----- the end -----------------------------------------------------------------------

    def last_drain(self) -> None:
        """What was outstanding, then one fresh poll of every actor that still answers (at
        most CALL_TIMEOUT_S for each round); then every feed row's outcome, the kept
        answers, the last seconds sealed, and the actors ended."""
        drained: list[dict[str, Any]] = []
        losses: list[Loss] = []
        for _ in range(2):
            now = self.clock.monotonic()
            watched = [a for a in self.actors if (a.alive or a.awaited)
                       and now - a.last_answer < max(self.spec.lease_s, SILENT_NOTICE_S)]
            got, lost = self._collect(watched, CALL_TIMEOUT_S)
            drained += got
            losses += lost
        # Lost in the last drain: recorded (their rows unknown), no one left to take over.
        self.lose_all(losses, restripe=False)
        self.log.append(drained)
        self._complete_outcomes()
        if self.spec.keep_answers:
            for actor in self.live():
                found = self.channel.first_answers(actor.index, CALL_TIMEOUT_S) or {}
                for code, body in found.items():
                    self.answers.setdefault(code, redact_text(body))
        self.log.seal_all()
        self.channel.release([a.index for a in self.live() if a.state == Phase.DONE])

    def feed_summary(self) -> dict[str, Any]:
        """The summary's "feed": the feed, and its rows' outcomes when it is sent once."""
        feed = self.spec.feed
        assert feed is not None
        out = feed.summary(self.spec.feed_mode)
        if self.outcomes is not None:
            final = self.outcomes_final
            counts = outcome_counts(final if final is not None else self.outcomes.table())
            if final is None:
                counts["pending"] = feed.rows - self.outcomes.rows
            out["outcomes"] = counts
            out["delivery"] = ("at-least-once (resend_unknown)" if self.spec.resend_unknown
                               else "at-most-once")
            out["resent_unknown"] = self.resent
        return out

    def _complete_outcomes(self) -> None:
        """Every row of a feed sent once gets an outcome: rows nobody reported are unsent,
        or unknown when an actor was lost (it may have sent them)."""
        feed = self.spec.feed
        if self.outcomes is None or feed is None:
            return
        every = np.arange(feed.rows)
        lost = np.asarray([a.index for a in self.actors if not a.alive])
        self.outcomes_final = self.outcomes.complete(
            feed.source_rows(every), feed.tag_names(every), np.isin(self.owners(feed.rows), lost))
        counts = outcome_counts(self.outcomes_final)
        if counts["unknown"]:
            self.notes.append(f"{counts['unknown']} feed rows have an unknown outcome (sent "
                              "by a lost actor or still in flight at the end; not resent)")
