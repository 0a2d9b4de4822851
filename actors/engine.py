"""The sender engine: sends the requests of its stripe of the schedule and records windows.

Only the thread that calls :meth:`Engine.run` touches the transfers. Control calls from
other threads (pause, resume, set_rate, set_stripe, stop) are queued and wake the loop
through an eventfd, so they act at once. Per-request failures are data in the windows,
never exceptions.

The loop is named steps, turn after turn: ``_turn`` (lease, control calls, windows of the
seconds that ended), ``_send_due`` (what is due, up to the in-flight cap), ``_wait`` and
``_collect`` (each finished transfer through ``_settle``: one place for answers and
failures). Where the run stands is one ``Phase``. Time and the network come in as a
``Clock`` and ``Transfers`` (actors/transfers.py): tests run the loop on simulated time.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pycurl

from rafale.actors.answers import EngineStatus, Fence, Phase
from rafale.actors.checks import check_index, check_number, check_rate
from rafale.actors.config import EngineConfig
from rafale.actors.feedrows import FeedRows
from rafale.actors.handles import NEGOTIATED_VERSION, Plans, connect_us
from rafale.actors.health import SchedStat, SenderHealth, read_schedstat
from rafale.actors.lease import Lease
from rafale.actors.limits import CONNECT, SendLimits
from rafale.actors.priority import request_slice
from rafale.actors.schedtime import ScheduleTime
from rafale.actors.seconds import Seconds
from rafale.actors.slots import Slots
from rafale.actors.stats import Recorder, error_kind
from rafale.actors.transfers import SYSTEM_CLOCK, Clock, CurlTransfers, Transfers, TransfersFactory


class Engine:
    """One sender: one Transfers (a libcurl multi), driven by its pacing, on one thread."""

    def __init__(self, config: EngineConfig, *, clock: Clock = SYSTEM_CLOCK,
                 transfers: TransfersFactory = CurlTransfers,
                 schedstat: Callable[[int], SchedStat | None] = read_schedstat) -> None:
        self.config = config
        self._clock, self._transfers_factory = clock, transfers
        self.recorder = Recorder(config.actor_index,
                                 late_after_us=int(config.late_after_s * 1e6))
        plan = config.feed
        self.feed = FeedRows(config, plan, self.recorder) if plan is not None else None
        self.rows = self.feed.rows if self.feed is not None else None
        self.outcomes = self.feed.outcomes if self.feed is not None else None
        self.answers: dict[int, bytes] = {}  # first body of each kept status (keep_answers)
        self.late_switches = 0  # stripe changes that came after their row boundary
        self._commands: deque[Callable[[], None]] = deque()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._lock = threading.Lock()
        self.phase = Phase.IDLE
        self.slots = Slots(config.schedule, config.actor_index, config.actor_count)
        # Clock state (monotonic seconds).
        self._time = ScheduleTime()
        self._stop_sched_t = math.inf  # schedule time of the end: nothing falls due after it
        self._grace_until: float | None = None  # set when sending ends
        self.start_skew_s = 0.0  # when the loop began, minus the common start instant
        self.slice_us: int | None = None  # the loop thread's scheduler slice, if it set one
        self.slice_note = ""
        self.lease = Lease(config.lease_s)  # renewed by drains; run out: fenced (status())
        # The loop's gaps and its thread's run-queue wait: is the sender the bottleneck?
        self.health = SenderHealth(config.stall_after_s, schedstat, clock.monotonic)
        # Loop state (loop thread): the open window, and closing the seconds that ended.
        self.seconds = Seconds(self.recorder, self.slots, self.health)
        self._cpu0 = 0.0
        self.limits = SendLimits(config)  # the in-flight cap and the connect budget
        self._plans = Plans(config)  # each request's URL and pinned address
        # Counters for status() (loops: turns of the loop).
        self.sent = self.completed = self.failed = self.in_flight = self.loops = 0

    # ----- control (any thread) -------------------------------------------------------

    def _post(self, command: Callable[[], None]) -> None:
        with self._lock:  # the wake fd closes when the run ends; a late call does nothing
            if self.phase is Phase.DONE:
                return
            self._commands.append(command)
            os.eventfd_write(self._wake_fd, 1)

    def pause(self) -> None:
        self._post(lambda: self._time.pause(self._clock.monotonic()))

    def resume(self) -> None:
        self._post(lambda: self._time.resume(self._clock.monotonic()))

    def set_rate(self, rate_per_s: float) -> None:
        rate = check_rate(rate_per_s)
        self._post(lambda: self._do_set_rate(rate))

    def set_stripe(self, index: int, count: int, from_row: int | None = None,
                   from_k: int | None = None) -> None:
        """Send the slots (and feed rows) of stripe ``index`` of ``count``: slots from global
        request ``from_k`` on (None: from now on), feed rows from ``from_row`` on (rows below
        it stay with the old stripe)."""
        count = check_number("stripe count", count, "actors", integer=True)
        index = check_index("stripe index", index, count)
        if from_row is not None:
            check_number("from_row", from_row, "rows", zero_ok=True, integer=True)
        if from_k is not None:
            check_number("from_k", from_k, "requests", zero_ok=True, integer=True)
        self._post(lambda: self._do_set_stripe(index, count, from_row, from_k))

    def catch_up(self, ranges: list[tuple[int, int, int]]) -> None:
        """Send these requests of the schedule (``range(start, stop, step)`` of global
        indices, already due: a lost actor's) as soon as the in-flight cap allows."""
        taken = [range(check_number("catch-up start", a, "requests", zero_ok=True,
                                    integer=True), int(b),
                       check_number("catch-up step", c, "requests", integer=True))
                 for a, b, c in ranges]
        self._post(lambda: self._do_catch_up(taken))

    def add_rows(self, rows: list[int]) -> None:
        """Feed rows to send in the next free slots (rows a lost actor may have sent)."""
        taken = [int(r) for r in rows]
        self._post(lambda: self.rows.add(taken, attempt=2) if self.rows is not None else None)

    def stop(self) -> None:
        self._post(self._do_stop)

    def drain(self) -> list[dict[str, Any]]:
        """Finished windows since the last drain; renews the lease."""
        self.renew()
        return self.recorder.drain()

    def renew(self) -> None:
        """Renew the lease (the driver has heard from this engine): see Lease.renew."""
        self.lease.renew(self._clock.monotonic())

    @property
    def fenced(self) -> Fence | None:
        """Why and since when the engine stopped sending by itself, once it has."""
        return self.lease.fenced

    def drain_outcomes(self) -> dict[str, list[Any]] | None:
        """Outcomes of the feed rows finished since the last call (``once`` feeds), or None."""
        return None if self.outcomes is None else self.outcomes.drain()

    def first_answers(self) -> dict[str, str]:
        """The first answer body (up to 200 bytes) of each status in ``keep_answers``."""
        return {str(code): body.decode("utf-8", "replace")
                for code, body in sorted(self.answers.items())}

    def status(self) -> EngineStatus:
        now = self._clock.monotonic()
        paused = self.phase is Phase.RUNNING and self._time.paused
        return {
            "state": "paused" if paused else str(self.phase),
            "elapsed_s": self._time.at(now) if self._time.start else 0.0,
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "start_skew_s": self.start_skew_s,
            "next_row": self.rows.next_row if self.rows is not None else None,
            "late_switches": self.late_switches,
            # Even when the loop thread, thawed, has not turned yet to fence itself (it will
            # before any send).
            "fenced": self.lease.fenced or self.lease.ran_out(now, self._time.start),
            "catch_up_left": self.slots.catch_up_left,
            "slice_us": self.slice_us,
        }

    # ----- commands (loop thread) -----------------------------------------------------

    def _do_set_rate(self, rate_per_s: float) -> None:
        cfg = self.config
        self.slots.set_rate(rate_per_s, self._time.at(self._clock.monotonic()), cfg.duration_s,
                            cfg.actor_index, cfg.actor_count, self.sent)

    def _do_set_stripe(self, index: int, count: int, from_row: int | None = None,
                       from_k: int | None = None) -> None:
        if self.rows is not None and self.rows.set_stripe(index, count, from_row):
            self.late_switches += 1
        sched_t = self._time.at(self._clock.monotonic())
        if not self.slots.set_stripe(index, count, from_k, sched_t, self.sent):
            self.late_switches += 1  # heard after its boundary: switch from now on

    def _do_catch_up(self, ranges: list[range]) -> None:
        if self.slots.closed:
            return
        if self.phase is not Phase.RUNNING:
            # Past its end (or fenced) an engine sends nothing more: the gap it was handed
            # was due and is not sent, so it counts as intended and dropped.
            added = sum(len(r) for r in ranges)
            self.recorder.add_intended(added)
            self.recorder.add_dropped(added)
            return
        self.slots.add_catch_up(ranges)

    def _fence(self, now: float) -> None:
        """The lease ran out: stop sending (the others have this stripe by now). Not one
        more send, not even a request due before the lease ran out (a frozen process wakes
        up behind): the others send this stripe's gap."""
        self.lease.fence(now, self._time.start)
        self.slots.drop_catch_up()
        self._end_at(self._time.at(now), Phase.FENCED)
        self._stop_sched_t = min(self._stop_sched_t, self.slots.last_before_next())

    def _do_stop(self) -> None:
        self._end_at(self._time.at(self._clock.monotonic()), Phase.STOPPED)

    def _end_at(self, sched_t: float, phase: Phase) -> None:
        """Sending ends at schedule time ``sched_t``: requests due by then and not sent
        are dropped, never sent late after it."""
        self._stop_sched_t = min(self._stop_sched_t, sched_t)
        if self.phase is Phase.RUNNING or phase is Phase.FENCED:
            self.phase = phase

    # ----- the loop (one thread) ------------------------------------------------------

    def run(self, start_at_s: float | None = None) -> None:
        """Send until the schedule (or duration) ends or stop(); then let in-flight finish."""
        with self._lock:
            if self.phase is not Phase.IDLE:
                raise RuntimeError("an engine runs once; create a new Engine")
            self.phase = Phase.RUNNING
        try:
            self._run(start_at_s)
        finally:
            with self._lock:
                self.phase = Phase.DONE
                self.lease.end()
                os.close(self._wake_fd)

    def _run(self, start_at_s: float | None) -> None:
        cfg, clock = self.config, self._clock
        if cfg.slice_us is not None:  # woken on time on a busy core
            self.slice_us, self.slice_note = request_slice(cfg.slice_us)
        transfers = self._transfers_factory(cfg, self._wake_fd, self.answers, clock)
        # The common start instant holds even for an actor that starts after it (its first
        # requests are then due at once, and late): the schedule is never shifted.
        if self.feed is not None:
            self.feed.warm()  # the first chunk, before the start
        wall_offset = 0.0 if start_at_s is None else start_at_s - clock.time()
        start = self._time.start = clock.monotonic() + wall_offset
        self.health.begin(threading.get_native_id(), start)
        while (left := start - clock.monotonic()) > 0 and not self._commands:
            clock.sleep(min(left, 0.05))
        self.start_skew_s = max(0.0, clock.monotonic() - start)
        self.lease.begin(clock.monotonic())
        self._cpu0 = clock.process_time()
        try:
            self._loop(transfers)
        finally:
            transfers.close()
            if self.feed is not None:
                self.feed.close()

    def _loop(self, transfers: Transfers) -> None:
        monotonic = self._clock.monotonic
        while True:
            self.loops += 1
            now = monotonic()
            self._turn(now)
            if self._grace_until is None:  # sending
                if not self._time.paused:
                    self._send_due(now, transfers)
                if self.phase is Phase.RUNNING and self._schedule_over(now):
                    self.phase = Phase.ENDING
                if self.phase is not Phase.RUNNING:
                    self._end_sending(now)
            elif self.in_flight == 0 or now >= self._grace_until:
                break
            held = self._wait(transfers)
            done_at = monotonic()
            self._collect(transfers, done_at)
            # What held sends while the loop waited held them until these ended: a request
            # due meanwhile was late for that cause.
            self.limits.held(held, done_at)
        self._finish(transfers)

    def _turn(self, now: float) -> None:
        """The lease, control calls, and the windows of seconds that ended."""
        # The lease, before anything is sent: a process frozen after the check that
        # follows the wait wakes up here, behind, and must not send the requests that
        # fell due meanwhile (it sent up to the in-flight cap of them).
        if now >= self.lease.until:
            self._fence(now)
        while self._commands:
            self._commands.popleft()()
        if int(now - self._time.start) > self.seconds.open:
            self._roll(now)

    def _schedule_over(self, now: float) -> bool:
        end_s = min(self.config.duration_s, self._stop_sched_t)
        return self._time.at(now) >= end_s or self.slots.next_due_s == math.inf

    def _send_due(self, now: float, transfers: Transfers) -> None:
        """Send every request due by now and before the end, within the send limits."""
        cfg, slots, rows = self.config, self.slots, self.rows
        base = self._time.base
        end_s = min(cfg.duration_s, self._stop_sched_t)
        closed = slots.closed
        limit, held_by, _ = self.limits.limit(now, self._time.start)
        while True:
            caught = bool(slots.catch_up) and base + slots.catch_up_due_s() <= now
            due_s = slots.next_due_s
            if not caught and not (base + due_s <= now and due_s <= end_s):
                break
            if self.in_flight >= limit:
                self.limits.held(held_by, now)
                break
            slot_s = slots.take_caught() if caught else due_s
            item = None
            if rows is not None:
                item = rows.take(base + slot_s)  # ready by the slot's time
                if item is None and caught:
                    slots.skipped += 1  # a caught-up slot with no row left
                    continue
                if item is None:  # no row ready for this slot
                    if rows.done and (not cfg.retry.retries or self.in_flight == 0):
                        # Every row is done: no later slot is due.
                        self._stop_sched_t = min(self._stop_sched_t, slots.last_before_next())
                        self.phase = Phase.ENDING
                        break
                    slots.skip()
                    continue
            self._send(transfers, now, now if closed else base + slot_s, item, closed)
            if not caught:
                slots.advance()
        self.limits.ramp()

    def _send(self, transfers: Transfers, now: float, intended: float,
              item: tuple[int, int] | None, closed: bool) -> None:
        """Prepare a handle for this slot (its feed row, if any) and start it."""
        easy = transfers.take()
        if item is not None:
            self.feed.prepare(easy, item, intended)  # type: ignore[union-attr]  # rows: a feed
        elif self._plans.varies:
            self._plans.apply(easy, closed)
        easy.intended_s = intended
        easy.sent_s = now
        transfers.start(easy)
        self.in_flight += 1
        self.sent += 1
        cap_full, connect_full = self.limits.causes(intended)
        self.recorder.on_sent(None if closed else int((now - intended) * 1e6), cap_full,
                              self.health.watch.stalled_at(intended, now), connect_full)

    def _end_sending(self, now: float) -> None:
        """Sending is over: the requests in flight get ``grace_s``; what fell due by the
        end and was not sent is counted dropped."""
        self._grace_until = now + self.config.grace_s
        if not self.slots.closed:
            self.seconds.intend(min(self._time.at(now), self._end_s), self.sent)
            self.recorder.add_dropped(max(0, self.slots.counted - self.sent))

    def _wait(self, transfers: Transfers) -> str:
        """Wait for the network, the transport's timer, the next due request or the window's
        end, in one wake-up; let the transfers act on it. Return what held sends meanwhile:
        "connect" (the connect budget), "cap" (the in-flight cap) or ""."""
        monotonic = self._clock.monotonic
        start = self._time.start
        grace_until = math.inf if self._grace_until is None else self._grace_until
        wait_until = min(start + self.seconds.open + 1, grace_until, self.lease.until)
        held, grows_at = self.limits.holding(self.in_flight, waiting_at := monotonic(), start)
        if self._grace_until is None and held == CONNECT:
            wait_until = min(wait_until, grows_at)  # the budget lets one more connection open
        if self._grace_until is None and not self._time.paused and not held:
            # Also when only retries are left: each slot is handled (sent or skipped) when
            # it falls due, so that its second counts it right.
            base, slots = self._time.base, self.slots
            wait_until = min(wait_until, base + slots.next_due_s)
            if slots.catch_up:
                wait_until = min(wait_until, base + slots.catch_up_due_s())
        watch = self.health.watch
        watch.waiting(waiting_at)
        ready = transfers.wait(wait_until)
        watch.woke(woke := monotonic(), wait_until)
        # The lease is checked on every wake-up, before a late roll would count what a
        # fenced engine will not send (it is set once the loop runs: no check before).
        if woke >= self.lease.until:
            self._fence(woke)
        if int(woke - start) > self.seconds.open:  # what the events bring is the new second's
            self._roll(woke)
        transfers.act(ready)
        return held

    def _collect(self, transfers: Transfers, done_at: float) -> None:
        (answered, failed), settle = transfers.finished(), self._settle
        for easy in answered:
            settle(easy, done_at, 0)
        for easy, code in failed:
            settle(easy, done_at, code)

    def _settle(self, easy: Any, done_at: float, code: int) -> None:
        """One finished transfer, answered (``code`` 0) or failed (curl's error code): its
        latency, counters and, for a feed row, its retry or its outcome."""
        rec = self.recorder
        corrected_us = int((done_at - easy.intended_s) * 1e6)
        self.in_flight -= 1
        if code == 0:
            status, kind = easy.getinfo(pycurl.RESPONSE_CODE), ""
            address = easy.getinfo(pycurl.PRIMARY_IP)
            rec.on_completed(
                status, NEGOTIATED_VERSION.get(easy.getinfo(pycurl.INFO_HTTP_VERSION), "?"),
                address, easy.getinfo(pycurl.SIZE_DOWNLOAD_T), corrected_us,
                int((done_at - easy.sent_s) * 1e6), connect_us(easy),
                easy.getinfo(pycurl.STARTTRANSFER_TIME_T))
            self.completed += 1
        else:
            status, address, kind = 0, "", error_kind(code)
            rec.on_failed(kind, code, corrected_us)
            self.failed += 1
        if self.feed is not None:
            self.feed.settle(easy, done_at, status, kind, code, address, corrected_us,
                             int(done_at - self._time.start))

    def _finish(self, transfers: Transfers) -> None:
        # Requests still open after the grace period stay counted as in flight.
        abandoned = transfers.abandon()
        if self.feed is not None:
            self.feed.finish(abandoned)
        self.seconds.finish(self._clock.monotonic(), self._time, self._end_s, self.sent,
                            self.in_flight, self._clock.process_time() - self._cpu0, self.loops)
        if self.outcomes is not None:
            self.outcomes.roll()

    @property
    def _end_s(self) -> float:
        """Schedule time at which sending ends: nothing falls due after it."""
        return min(self.config.duration_s, self._stop_sched_t)

    def _roll(self, now: float) -> None:
        """Close the windows of every second that ended by ``now`` (see Seconds.roll)."""
        self.seconds.roll(now, self._time, self._end_s, self.sent, self.in_flight,
                          self._clock.process_time() - self._cpu0, self.loops)
        if self.outcomes is not None:
            self.outcomes.roll()


def run_in_process(config: EngineConfig, start_at_s: float | None = None) -> list[dict[str, Any]]:
    """Run one engine in this process (no Ray) and return all its windows."""
    engine = Engine(config)
    engine.run(start_at_s)
    return engine.drain()
