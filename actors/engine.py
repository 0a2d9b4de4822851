"""The sender engine: one libcurl multi handle driven by epoll, curl's timer and the pacer.

Only the thread that calls :meth:`Engine.run` touches curl. Control calls from other
threads (pause, resume, set_rate, set_stripe, stop) are queued and wake the loop through
an eventfd, so they act at once. Per-request failures are data in the windows, never
exceptions.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pycurl

from rafale.actors.answers import EngineStatus, Fence
from rafale.actors.checks import check_index, check_number, check_rate
from rafale.actors.config import EngineConfig
from rafale.actors.feed import FeedReader
from rafale.actors.handles import (
    NEGOTIATED_VERSION,
    apply_row,
    new_easy,
    new_multi,
    pin_cycle,
    row_pins,
)
from rafale.actors.outcomes import OutcomeBuffer
from rafale.actors.pacing import (
    Pacer,
    Schedule,
    Stage,
    StripedPacer,
    SwitchPacer,
    UnlimitedPacer,
)
from rafale.actors.priority import request_slice
from rafale.actors.rows import RowSource
from rafale.actors.sockets import SocketWatch
from rafale.actors.stats import Recorder, error_kind


class Engine:
    """One sender: sends the requests of its stripe of the schedule and records windows."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.recorder = Recorder(config.actor_index,
                                 late_after_us=int(config.late_after_s * 1e6))
        feed = config.feed
        self.feed = FeedReader(feed) if feed is not None else None
        # Outcome of every row (``once`` feeds): drained by the driver with the windows.
        self.outcomes = OutcomeBuffer(config.actor_index) if feed and feed.once else None
        # Which row each slot sends (feeds): this stripe's rows, retries, rows handed over.
        self.rows = (RowSource(config.actor_index, config.actor_count,
                               feed.rows if feed.once else None) if feed else None)
        self._skipped = 0  # slots with no row ready (a feed sent once): not intended
        self._rows_done = False
        self.answers: dict[int, bytes] = {}  # first body of each kept status (keep_answers)
        self.late_switches = 0  # stripe changes that came after their row boundary
        self._commands: deque[Callable[[], None]] = deque()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._state = "idle"
        self._lock = threading.Lock()
        # Pacing state: local request j of the current pacer, and its due time.
        self._schedule: Schedule | None = config.schedule
        self._pacer: Pacer = self._make_pacer(config.actor_index, config.actor_count, 0)
        self._j = 0
        self._intended_base = 0
        self._intended_counted = 0
        # Clock state (monotonic seconds).
        self._start = 0.0
        self._paused_total = 0.0
        self._paused_at: float | None = None
        self._stopping = False
        self._stop_sched_t = math.inf  # schedule time of stop(): nothing falls due after it
        self.start_skew_s = 0.0  # when the loop began, minus the common start instant
        self.slice_us: int | None = None  # the loop thread's scheduler slice, if it set one
        self.slice_note = ""
        # The lease: every drain renews it; once it runs out the engine stops sending
        # (fenced) and says why in status(). Monotonic seconds; set when the loop starts.
        self._lease_until = math.inf
        self.fenced: Fence | None = None
        # Requests of a lost actor's stripe handed to this one (catch-up): ranges of global
        # request indices, already due; they are sent first, late, and counted as intended.
        self._catch_up: deque[range] = deque()
        self._catch_up_intended = 0
        self.catch_up_left = 0  # for status(): the deque belongs to the loop thread
        self._ending = False  # sending is over (schedule end, stop, fence, rows done)
        # Counters for status().
        self.sent = 0
        self.completed = 0
        self.failed = 0
        self.in_flight = 0
        self.loops = 0

    # ----- control (any thread) -------------------------------------------------------

    def _post(self, command: Callable[[], None]) -> None:
        with self._lock:  # the wake fd closes when the run ends; a late call does nothing
            if self._state == "done":
                return
            self._commands.append(command)
            os.eventfd_write(self._wake_fd, 1)

    def pause(self) -> None:
        self._post(self._do_pause)

    def resume(self) -> None:
        self._post(self._do_resume)

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
        """Renew the lease (the driver has heard from this engine). A lease that has run
        out is not renewed: the driver has given the stripe away by then (the loop fences
        at its next turn, even if it was frozen past the lease and this call came first)."""
        now = time.monotonic()
        if self.config.lease_s is not None and self.fenced is None and now < self._lease_until:
            self._lease_until = now + self.config.lease_s

    def drain_outcomes(self) -> dict[str, list[Any]] | None:
        """Outcomes of the feed rows finished since the last call (``once`` feeds), or None."""
        return None if self.outcomes is None else self.outcomes.drain()

    def first_answers(self) -> dict[str, str]:
        """The first answer body (up to 200 bytes) of each status in ``keep_answers``."""
        return {str(code): body.decode("utf-8", "replace")
                for code, body in sorted(self.answers.items())}

    def status(self) -> EngineStatus:
        return {
            "state": self._state,
            "elapsed_s": self._sched_now(time.monotonic()) if self._start else 0.0,
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "start_skew_s": self.start_skew_s,
            "next_row": self.rows.next_row if self.rows is not None else None,
            "late_switches": self.late_switches,
            "fenced": self.fenced or self._lease_ran_out(time.monotonic()),
            "catch_up_left": self.catch_up_left,
            "slice_us": self.slice_us,
        }

    # ----- pacing helpers (loop thread) -----------------------------------------------

    def _make_pacer(self, index: int, count: int, start_k: int) -> Pacer:
        if self._schedule is None:
            return UnlimitedPacer(index=index, count=count)
        return StripedPacer(self._schedule, index, count, start_k)

    def _sched_now(self, now: float) -> float:
        at = self._paused_at if self._paused_at is not None else now
        return at - self._start - self._paused_total

    def _swap_pacer(self, pacer: Pacer, j: int, now: float) -> None:
        """Replace the pacer, keeping the count of intended requests continuous."""
        sched_t = self._sched_now(now)
        if isinstance(self._pacer, UnlimitedPacer):
            done = self.sent
        else:
            done = self._intended_base + self._pacer.count_due(sched_t)
        self._pacer, self._j = pacer, j
        self._intended_base = done - pacer.count_due(sched_t)

    def _do_pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = time.monotonic()
            self._state = "paused"

    def _do_resume(self) -> None:
        if self._paused_at is not None:
            self._paused_total += time.monotonic() - self._paused_at
            self._paused_at = None
            self._state = "running"

    def _do_set_rate(self, rate_per_s: float) -> None:
        now = time.monotonic()
        sched_t = self._sched_now(now)
        cfg = self.config
        if self._schedule is None:
            rest = max(cfg.duration_s - sched_t, 1e-3)
            stages = (Stage(max(sched_t, 1e-9), 0.0, 0.0), Stage(rest, rate_per_s, rate_per_s))
            self._schedule = Schedule(stages)
            self._swap_pacer(self._make_pacer(cfg.actor_index, cfg.actor_count, 0), 0, now)
            return
        self._schedule = self._schedule.with_rate_from(sched_t, rate_per_s)
        self._settle()
        old = self._pacer
        assert isinstance(old, StripedPacer | SwitchPacer)
        self._swap_pacer(old.with_schedule(self._schedule), self._j, now)

    def _do_set_stripe(self, index: int, count: int, from_row: int | None = None,
                       from_k: int | None = None) -> None:
        now = time.monotonic()
        if self.rows is not None and self.rows.set_stripe(index, count, from_row):
            self.late_switches += 1
        if self._schedule is None:
            return  # the closed model has no global schedule to share
        self._settle()
        old = self._pacer
        # On time when no request at or past the boundary has been sent yet.
        if (from_k is not None and isinstance(old, StripedPacer | SwitchPacer)
                and (self._j == 0 or old.global_k(self._j - 1) < from_k)):
            # Switch at the common boundary: the old stripe's requests before from_k are
            # still this engine's to send, the new stripe's from from_k on.
            new = StripedPacer(self._schedule, index, count, from_k)
            self._swap_pacer(SwitchPacer(old, self._j, new), 0, now)
            return
        if from_k is not None:
            self.late_switches += 1  # heard after its boundary: switch from now on
        start_k = self._schedule.count_due(self._sched_now(now))
        self._swap_pacer(StripedPacer(self._schedule, index, count, start_k), 0, now)

    def _settle(self) -> None:
        """Replace a stripe switch that is behind us by its new pacer (same requests)."""
        pacer = self._pacer
        while isinstance(pacer, SwitchPacer) and (done := pacer.settled(self._j)) is not None:
            pacer, self._j, before = done
            self._pacer = pacer
            self._intended_base += before  # the old requests, all due: count_due drops them

    def _do_catch_up(self, ranges: list[range]) -> None:
        ranges = [r for r in ranges if len(r)]
        if self._schedule is None or not ranges:
            return
        added = sum(len(r) for r in ranges)
        if self.fenced is not None or self._ending:
            # Past its end (or fenced) an engine sends nothing more: the gap it was handed
            # was due and is not sent, so it counts as intended and dropped.
            self.recorder.add_intended(added)
            self.recorder.add_dropped(added)
            return
        self._catch_up.extend(ranges)
        self._catch_up_intended += added
        self.catch_up_left += added

    def _catch_up_due_s(self) -> float:
        """When the next caught-up request is due (schedule seconds)."""
        return self._schedule.time_of(self._catch_up[0][0])  # type: ignore[union-attr]

    def _lease_ran_out(self, now: float) -> Fence | None:
        """The fence record once the lease has run out (at its expiry: from then on the
        engine sends nothing), None before. status() reports it even when the loop thread,
        thawed, has not turned yet to fence itself (it will before any send)."""
        if now < self._lease_until:
            return None
        return {"at_s": round(self._lease_until - self._start, 3),
                "why": f"not drained for {self.config.lease_s:g} s (lease_s): stopped sending, "
                       "as the driver gives the stripe to the other actors"}

    def _fence(self, now: float) -> None:
        """The lease ran out: stop sending (the others have this stripe by now)."""
        self.fenced = self._lease_ran_out(now)
        self._lease_until = math.inf
        self._catch_up.clear()
        self.catch_up_left = 0
        self._do_stop()
        # Not one more send, not even a request due before the lease ran out (a frozen
        # process wakes up behind): the others send this stripe's gap.
        next_due_s = self._pacer.due_s(self._j)
        self._stop_sched_t = min(self._stop_sched_t, math.nextafter(next_due_s, -math.inf))

    def _do_stop(self) -> None:
        self._stopping = True
        self._stop_sched_t = min(self._stop_sched_t, self._sched_now(time.monotonic()))

    # ----- the loop (one thread) ------------------------------------------------------

    def run(self, start_at_s: float | None = None) -> None:
        """Send until the schedule (or duration) ends or stop(); then let in-flight finish."""
        with self._lock:
            if self._state != "idle":
                raise RuntimeError("an engine runs once; create a new Engine")
            self._state = "running"
        try:
            self._run(start_at_s)
        finally:
            with self._lock:
                self._state = "done"
                self._lease_until = math.inf  # an ended engine has nothing left to fence
                os.close(self._wake_fd)

    def _run(self, start_at_s: float | None) -> None:
        cfg = self.config
        if cfg.slice_us is not None:  # woken on time on a busy core
            self.slice_us, self.slice_note = request_slice(cfg.slice_us)
        sockets = SocketWatch(self._wake_fd)
        multi = new_multi(cfg)
        curl_deadline = [math.inf]

        def on_timer(timeout_ms: int) -> None:
            curl_deadline[0] = math.inf if timeout_ms < 0 else time.monotonic() + timeout_ms / 1e3

        multi.setopt(pycurl.M_SOCKETFUNCTION, sockets.on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, on_timer)

        # The common start instant holds even for an actor that starts after it (its first
        # requests are then due at once, and late): the schedule is never shifted.
        if self.feed is not None and self.rows is not None and not self.rows.done:
            self.feed.row(self.rows.next_row)  # the first chunk, before the start
        wall_offset = 0.0 if start_at_s is None else start_at_s - time.time()
        self._start = time.monotonic() + wall_offset
        while (left := self._start - time.monotonic()) > 0 and not self._commands:
            time.sleep(min(left, 0.05))
        self.start_skew_s = max(0.0, time.monotonic() - self._start)
        if cfg.lease_s is not None:
            self._lease_until = time.monotonic() + cfg.lease_s  # from the start on
        try:
            self._loop(multi, sockets, curl_deadline)
        finally:
            multi.close()
            sockets.close()
            if self.feed is not None:
                self.feed.close()

    def _loop(self, multi: pycurl.CurlMulti, sockets: SocketWatch, deadline: list[float]) -> None:
        cfg, rec = self.config, self.recorder
        free: list[pycurl.Curl] = []
        busy: set[pycurl.Curl] = set()
        plans = pin_cycle(cfg)
        varies = len(cfg.urls) > 1 or cfg.dns == "pinned"
        feed, rows = self.feed, self.rows
        plan = cfg.feed
        pins = row_pins(cfg) if feed is not None else None
        outcomes = self.outcomes
        tags = plan.tags if plan is not None else ()
        once, feed_rows = (plan.once, plan.rows) if plan is not None else (False, 1)
        record_tag = rec.on_tag
        retry = cfg.retry
        answers = self.answers
        # Rows waiting for a retry: when the row was first due, and its last answer.
        first_due: dict[int, float] = {}
        last: dict[int, tuple[int, str, str, int]] = {}
        closed = self._schedule is None
        cap = min(cfg.in_flight_step, cfg.max_in_flight)
        cap_full_at = -math.inf
        second = 0
        monotonic = time.monotonic
        process_time = time.process_time
        cpu0 = process_time()
        grace_until = math.inf
        start = self._start
        due_s = self._pacer.due_s(self._j)
        pacer = self._pacer
        socket_action = multi.socket_action
        poll = sockets.poll
        info_read = multi.info_read
        record_done = rec.on_completed
        record_failed = rec.on_failed
        record_sent = rec.on_sent
        while True:
            self.loops += 1
            now = monotonic()
            # The lease, before anything is sent: a process frozen after the check that
            # follows the wait below wakes up here, behind, and must not send the requests
            # that fell due meanwhile (it sent up to the in-flight cap of them).
            if now >= self._lease_until:
                self._fence(now)
            if self._commands:
                while self._commands:
                    self._commands.popleft()()
                pacer = self._pacer
                due_s = pacer.due_s(self._j)
                closed = self._schedule is None
            # Close every window that ended, and decide whether sending is over.
            if int(now - start) > second:
                second = self._roll(now, closed, cpu0)
            if grace_until == math.inf:
                # Sending stops at the end of the schedule (the duration) or at stop():
                # requests due by then and not sent are dropped, never sent late after it.
                # A feed sent once also ends when every row of this stripe is done.
                sched_t = self._sched_now(now)
                end_s = min(cfg.duration_s, self._stop_sched_t)
                ending = (self._stopping or sched_t >= end_s or due_s == math.inf
                          or self._rows_done)
                # Send every request that is due before the end, up to the in-flight cap.
                if self._paused_at is None:
                    base = start + self._paused_total
                    catch_up = self._catch_up
                    while ((catch_up and base + self._catch_up_due_s() <= now)
                           or (base + due_s <= now and due_s <= end_s)):
                        if self.in_flight >= cap:
                            cap_full_at = now
                            break
                        slot_s, caught = due_s, False
                        if catch_up and base + (caught_s := self._catch_up_due_s()) <= now:
                            # A lost actor's request (most are overdue): sent first.
                            slot_s, caught = caught_s, True
                            self.catch_up_left -= 1
                            span = catch_up[0]
                            if len(span) > 1:
                                catch_up[0] = span[1:]
                            else:
                                catch_up.popleft()
                        if rows is not None:
                            item = rows.take(base + slot_s)  # ready by the slot's time
                            if item is None and caught:
                                self._skipped += 1  # a caught-up slot with no row left
                                continue
                            if item is None:  # no row ready for this slot
                                if rows.done and (not retry.retries or self.in_flight == 0):
                                    # Every row is done: no later slot is due.
                                    self._rows_done = True
                                    self._stop_sched_t = min(self._stop_sched_t,
                                                             math.nextafter(due_s, -math.inf))
                                    ending = True
                                    break
                                self._skipped += 1
                                self._j += 1
                                due_s = pacer.due_s(self._j)
                                continue
                        easy = free.pop() if free else new_easy(cfg, answers)
                        if feed is not None:
                            k, attempt = item  # type: ignore[misc]  # feeds have rows
                            url, method, headers, body, tag = feed.row(k)
                            apply_row(easy, cfg, url, method, headers, body)
                            if pins is not None:
                                easy.setopt(pycurl.CONNECT_TO, pins.next_for(url))
                            easy.k, easy.attempt = k, attempt
                            easy.row = k if once else k % feed_rows
                            easy.tag = tags[tag] if tag >= 0 else None
                            if attempt > 1:
                                rec.on_retry()
                        elif varies:
                            url, connect_to = next(plans)
                            easy.setopt(pycurl.URL, url)
                            if connect_to is not None:
                                easy.setopt(pycurl.CONNECT_TO, connect_to)
                        intended = now if closed else base + slot_s
                        easy.intended_s = intended
                        if feed is not None:
                            easy.first_s = first_due.pop(k, intended) if first_due else intended
                        easy.sent_s = now
                        multi.add_handle(easy)
                        busy.add(easy)
                        self.in_flight += 1
                        self.sent += 1
                        record_sent(None if closed else int((now - intended) * 1e6),
                                    intended <= cap_full_at)
                        if not caught:
                            self._j += 1
                            due_s = pacer.due_s(self._j)
                    if cap < cfg.max_in_flight:
                        cap = min(cap + cfg.in_flight_step, cfg.max_in_flight)
                if ending:
                    self._ending = True
                    grace_until = now + cfg.grace_s
                    if not closed:
                        self._close_intended(sched_t, closed)
                        rec.add_dropped(max(0, self._intended_counted - self.sent))
            elif self.in_flight == 0 or now >= grace_until:
                break
            # Wait for curl's sockets, curl's timer, the next due request or window end.
            wait_until = min(deadline[0], start + second + 1, grace_until, self._lease_until)
            cap_full = self.in_flight >= cap
            if grace_until == math.inf and self._paused_at is None and not cap_full:
                # Also when only retries are left: each slot is handled (sent or skipped)
                # when it falls due, so that its second counts it right.
                wait_until = min(wait_until, start + self._paused_total + due_s)
                if self._catch_up:
                    wait_until = min(wait_until,
                                     start + self._paused_total + self._catch_up_due_s())
            # One wake-up, to the microsecond (see SocketWatch.poll).
            ready = poll(wait_until - monotonic())
            woke = monotonic()
            # The lease is checked on every wake-up, before a late roll would count what a
            # fenced engine will not send (it is set once the loop runs: no check before).
            if woke >= self._lease_until:
                self._fence(woke)
            if int(woke - start) > second:  # what the events bring belongs to the new second
                second = self._roll(woke, closed, cpu0)
            for fd, mask in ready:
                socket_action(fd, mask)
            if deadline[0] <= monotonic():
                deadline[0] = math.inf
                socket_action(pycurl.SOCKET_TIMEOUT, 0)
            # Collect finished transfers.
            done_at = monotonic()
            while True:
                queued, ok, failed = info_read()
                for easy in ok:
                    multi.remove_handle(easy)
                    busy.discard(easy)
                    free.append(easy)
                    status = easy.getinfo(pycurl.RESPONSE_CODE)
                    address = easy.getinfo(pycurl.PRIMARY_IP)
                    corrected_us = int((done_at - easy.intended_s) * 1e6)
                    record_done(
                        status,
                        NEGOTIATED_VERSION.get(easy.getinfo(pycurl.INFO_HTTP_VERSION), "?"),
                        address,
                        easy.getinfo(pycurl.SIZE_DOWNLOAD_T),
                        corrected_us,
                        int((done_at - easy.sent_s) * 1e6),
                        easy.getinfo(pycurl.NUM_CONNECTS) > 0,
                    )
                    if feed is not None:
                        if easy.tag is not None:
                            record_tag(easy.tag, status, corrected_us)
                        if retry.retries and retry.wants(easy.attempt, status, ""):
                            wait_s = retry.delay_s(easy.attempt,
                                                   easy.getinfo(pycurl.RETRY_AFTER))
                            rows.retry(  # type: ignore[union-attr]
                                easy.k, easy.attempt + 1, done_at + wait_s)
                            first_due[easy.k] = easy.first_s
                            last[easy.k] = (status, "", address, easy.attempt)
                        elif outcomes is not None:
                            outcomes.add(easy.row, status, "",
                                         int((done_at - easy.first_s) * 1e6), easy.attempt,
                                         address, int(done_at - start))
                for easy, code, _message in failed:
                    multi.remove_handle(easy)
                    busy.discard(easy)
                    free.append(easy)
                    kind = error_kind(code)
                    corrected_us = int((done_at - easy.intended_s) * 1e6)
                    record_failed(kind, code, corrected_us)
                    if feed is not None:
                        if easy.tag is not None:
                            record_tag(easy.tag, f"{kind}:{code}")
                        if retry.retries and retry.wants(easy.attempt, 0, kind):
                            rows.retry(easy.k, easy.attempt + 1,  # type: ignore[union-attr]
                                       done_at + retry.delay_s(easy.attempt, 0))
                            first_due[easy.k] = easy.first_s
                            last[easy.k] = (0, f"{kind}:{code}", "", easy.attempt)
                        elif outcomes is not None:
                            outcomes.add(easy.row, 0, f"{kind}:{code}",
                                         int((done_at - easy.first_s) * 1e6), easy.attempt,
                                         "", int(done_at - start))
                finished = len(ok) + len(failed)
                self.in_flight -= finished
                self.completed += len(ok)
                self.failed += len(failed)
                if not queued:
                    break
            if cap_full:  # the cap stayed full while the loop waited, until these ended
                cap_full_at = done_at
        # Requests still open after the grace period stay counted as in flight; their rows'
        # outcome is unknown (no status, no error).
        for easy in busy:
            multi.remove_handle(easy)
            if outcomes is not None:
                outcomes.add(easy.row, 0, "", -1, easy.attempt, "", -1)
        # Rows still waiting for a retry when sending ended keep their last answer.
        if outcomes is not None and plan is not None:
            for k, (status, error, address, attempt) in last.items():
                if k in first_due:
                    outcomes.add(plan.row_of(k), status, error, -1, attempt, address, -1)
        self._close_intended(self._sched_now(monotonic()), closed)
        rec.finish(in_flight=self.in_flight, cpu_s_total=process_time() - cpu0,
                   loops_total=self.loops)
        if outcomes is not None:
            outcomes.roll()
        for easy in list(busy) + free:
            easy.close()

    def _roll(self, now: float, closed: bool, cpu0: float) -> int:
        """Close the windows of every second that ended by ``now``; return the open second."""
        second = int(now - self._start)
        self._close_intended(self._sched_now(now), closed)
        self.recorder.roll(second, in_flight=self.in_flight,
                           cpu_s_total=time.process_time() - cpu0, loops_total=self.loops)
        if self.outcomes is not None:
            self.outcomes.roll()
        return second

    def _close_intended(self, sched_t: float, closed: bool) -> None:
        """Add to the open window the requests that fell due since the last call."""
        if closed:
            due = self.sent
        else:
            end_s = min(sched_t, self.config.duration_s, self._stop_sched_t)
            due = (self._intended_base + self._pacer.count_due(end_s) - self._skipped
                   + self._catch_up_intended)
        if due > self._intended_counted:
            self.recorder.add_intended(due - self._intended_counted)
            self._intended_counted = due


def run_in_process(config: EngineConfig, start_at_s: float | None = None) -> list[dict[str, Any]]:
    """Run one engine in this process (no Ray) and return all its windows."""
    engine = Engine(config)
    engine.run(start_at_s)
    return engine.drain()
