"""The sender's CPU priority: read it, and lower a Ray worker's niceness to 0 when allowed.

Ray starts its worker processes, so every ``SenderActor``, at niceness 15 unless the node
was started with ``RAY_worker_niceness=0``. A nice-15 process gets about 1/30 of the CPU
share of a nice-0 one on a contended core: the engine then wakes every ~25 ms instead of
every ~0.5 ms and sends in clumps. On Linux niceness belongs to each thread, so
:func:`renice_process` sets every thread of the process (``/proc/self/task``); threads
started afterwards inherit it from the thread that starts them. Lowering niceness needs
root or CAP_SYS_NICE; without it the niceness stays and the driver warns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ADVICE = ("start Ray with RAY_worker_niceness=0 (e.g. `RAY_worker_niceness=0 ray start ...`) "
          "or run it as a user allowed to lower niceness")


@dataclass(frozen=True)
class Priority:
    """Niceness of the sender process: as started, and after trying to lower it to 0."""

    started: int
    now: int
    error: str = ""

    @property
    def lowered(self) -> bool:
        return self.now < self.started

    def warning(self, who: str) -> str:
        """A warning line when the sender still runs above niceness 0, else ""."""
        if self.now <= 0:
            return ""
        return (f"{who} runs at niceness {self.now}: its timing degrades when the core is "
                f"busy; {ADVICE}")


def niceness(tid: int = 0) -> int:
    """Niceness of a thread of this process (0: the calling thread)."""
    return os.getpriority(os.PRIO_PROCESS, tid)


def renice_process(target: int = 0) -> Priority:
    """Set every thread of this process to niceness ``target`` when it is above it."""
    started = niceness()
    if started <= target:
        return Priority(started, started)
    error = ""
    tasks = Path("/proc/self/task")
    tids = [int(p.name) for p in tasks.iterdir()] if tasks.is_dir() else [0]
    for tid in tids:
        try:
            if niceness(tid) > target:
                os.setpriority(os.PRIO_PROCESS, tid, target)
        except ProcessLookupError:
            continue  # the thread ended meanwhile
        except PermissionError as exc:
            error = f"cannot lower niceness: {exc.strerror or exc}"
            break
    return Priority(started, niceness(), error)
