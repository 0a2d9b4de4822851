"""What a sender answers the driver: its status, and the one poll a second.

Plain dicts on the wire (Ray pickles them), typed here so that the engine that builds them
and the driver that reads them agree on every key. The windows themselves are defined by
``actors/contract.py``. Imports: stdlib only.
"""

from __future__ import annotations

import enum
from typing import Any, TypedDict

__all__ = ["EngineStatus", "Fence", "Phase", "PollAnswer", "SenderStatus"]


class Phase(enum.StrEnum):
    """Where an engine's run stands. Sending happens only while ``RUNNING`` (a pause is a
    pause within it); the three ends then give the requests in flight ``grace_s``."""

    IDLE = "idle"          # made, not run yet
    RUNNING = "running"    # sending what falls due
    ENDING = "ending"      # the schedule (or the duration) ended, or every feed row is done
    STOPPED = "stopped"    # stop() was called
    FENCED = "fenced"      # the lease ran out: the driver gave this stripe to the others
    DONE = "done"          # the loop returned: nothing in flight, windows all closed


class Fence(TypedDict):
    """Why and when (run seconds) an engine stopped sending by itself: its lease ran out."""

    at_s: float
    why: str


class EngineStatus(TypedDict):
    """An engine's state and counters (``Engine.status()``), readable from any thread."""

    state: str                 # a Phase's value, or "paused" (while running)
    elapsed_s: float           # schedule seconds (pauses left out)
    sent: int
    completed: int
    failed: int
    in_flight: int
    start_skew_s: float        # how late its loop began after the common start instant
    next_row: int | None       # the next feed row of its stripe (feeds), else None
    late_switches: int         # stripe changes heard after their boundary
    fenced: Fence | None       # set once its lease has run out
    catch_up_left: int         # requests of a lost actor's stripe still to send
    slice_us: int | None       # the loop thread's scheduler slice, if it set one


class SenderStatus(EngineStatus):
    """The engine's status plus the exception that ended its loop, if any."""

    error: str                 # repr of that exception, or ""


class PollAnswer(TypedDict):
    """``SenderActor.poll()``: the finished windows, the status and the feed outcomes."""

    windows: list[dict[str, Any]]            # see actors/contract.py
    status: SenderStatus
    outcomes: dict[str, list[Any]] | None    # columns of finished rows (``once`` feeds)
