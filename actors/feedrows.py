"""The feed side of one engine: which row a slot sends, how a handle is set for it, and what
an answer means for the row (a retry, or its outcome).

An engine with a feed holds one :class:`FeedRows`; an engine without one never calls into
this module (its hot path stays as short as it was).
"""

from __future__ import annotations

from typing import Any

import pycurl

from rafale.actors.config import EngineConfig
from rafale.actors.feed import FeedPlan, FeedReader
from rafale.actors.handles import apply_row, row_pins
from rafale.actors.outcome_buffer import OutcomeBuffer
from rafale.actors.rows import RowSource
from rafale.actors.stats import Recorder


class FeedRows:
    """This engine's stripe of a feed: its rows, their retries, and (``once``) outcomes."""

    def __init__(self, config: EngineConfig, plan: FeedPlan, recorder: Recorder) -> None:
        self._config, self._plan, self._recorder = config, plan, recorder
        self.reader = FeedReader(plan)
        # Which row each slot sends: this stripe's rows, retries, rows handed over.
        self.rows = RowSource(config.actor_index, config.actor_count,
                              plan.rows if plan.once else None)
        # Outcome of every row (``once`` feeds): drained by the driver with the windows.
        self.outcomes = OutcomeBuffer(config.actor_index) if plan.once else None
        self._pins = row_pins(config)
        # Rows waiting for a retry: when the row was first due, and its last answer.
        self._first_due: dict[int, float] = {}
        self._last: dict[int, tuple[int, str, str, int]] = {}

    def __repr__(self) -> str:
        return f"FeedRows({self.rows!r}, waiting for a retry: {len(self._first_due)})"

    def warm(self) -> None:
        """Read the first chunk of rows (before the start)."""
        if not self.rows.done:
            self.reader.row(self.rows.next_row)

    def prepare(self, easy: Any, item: tuple[int, int], intended: float) -> None:
        """Set ``easy`` to send row ``k`` (attempt ``attempt``) for a slot due at
        ``intended``."""
        k, attempt = item
        url, method, headers, body, tag = self.reader.row(k)
        apply_row(easy, self._config, url, method, headers, body)
        if self._pins is not None:
            easy.setopt(pycurl.CONNECT_TO, self._pins.next_for(url))
        plan = self._plan
        easy.k, easy.attempt = k, attempt
        easy.row = k if plan.once else k % plan.rows
        easy.tag = plan.tags[tag] if tag >= 0 else None
        if attempt > 1:
            self._recorder.on_retry()
        first_due = self._first_due
        easy.first_s = first_due.pop(k, intended) if first_due else intended

    def settle(self, easy: Any, done_at: float, status: int, kind: str, code: int,
               address: str, corrected_us: int, second: int) -> None:
        """A row's request ended, answered (``code`` 0) or failed: retry it, or record its
        outcome (``second``: the run second it ended in)."""
        error = f"{kind}:{code}" if code else ""
        if easy.tag is not None:
            self._recorder.on_tag(easy.tag, error or status, None if error else corrected_us)
        retry, k, attempt = self._config.retry, easy.k, easy.attempt
        if retry.retries and retry.wants(attempt, status, kind):
            after_s = easy.getinfo(pycurl.RETRY_AFTER) if code == 0 else 0
            self.rows.retry(k, attempt + 1, done_at + retry.delay_s(attempt, after_s))
            self._first_due[k] = easy.first_s
            self._last[k] = (status, error, address, attempt)
        elif self.outcomes is not None:
            self.outcomes.add(easy.row, status, error, int((done_at - easy.first_s) * 1e6),
                              attempt, address, second)

    def finish(self, abandoned: list[Any]) -> None:
        """Sending is over: rows still in flight have an unknown outcome (no status, no
        error); rows still waiting for a retry keep their last answer."""
        outcomes = self.outcomes
        if outcomes is None:
            return
        for easy in abandoned:
            outcomes.add(easy.row, 0, "", -1, easy.attempt, "", -1)
        for k, (status, error, address, attempt) in self._last.items():
            if k in self._first_due:
                outcomes.add(self._plan.row_of(k), status, error, -1, attempt, address, -1)

    def close(self) -> None:
        self.reader.close()
