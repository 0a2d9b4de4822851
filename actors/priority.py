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

import ctypes
import os
import platform
import sys
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


# ----- a short scheduler slice for the sending thread (Linux EEVDF, 6.12+) ------------------

ENGINE_SLICE_US = 100  # the kernel's floor; its default is ~0.7-3 ms depending on CPUs
_SCHED_SETATTR = {"x86_64": (314, 315), "aarch64": (274, 275)}  # (setattr, getattr)


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32),
                ("sched_flags", ctypes.c_uint64), ("sched_nice", ctypes.c_int32),
                ("sched_priority", ctypes.c_uint32), ("sched_runtime", ctypes.c_uint64),
                ("sched_deadline", ctypes.c_uint64), ("sched_period", ctypes.c_uint64)]


def request_slice(slice_us: int = ENGINE_SLICE_US) -> tuple[int | None, str]:
    """Ask the scheduler for a short time slice for the calling thread; (the slice it now
    has in us, or None; why not, or "").

    On a busy core the EEVDF scheduler lets a waking thread run first when its virtual
    deadline (arrival + slice) is earlier than the running one's: a sender that asks for a
    short slice — it runs for microseconds at a time anyway — is woken on time beside
    busy loops instead of after their slices (a send lag of milliseconds). Policy, nice
    and priority are kept; unprivileged threads may do this. Kernels before 6.12 (no
    custom slices) accept the call and keep their own slice: the answer says so.
    """
    numbers = _SCHED_SETATTR.get(platform.machine())
    if sys.platform != "linux" or numbers is None:
        return None, f"not on {sys.platform}/{platform.machine()}"
    libc = ctypes.CDLL(None, use_errno=True)
    attr = _SchedAttr()
    size = ctypes.sizeof(_SchedAttr)
    if libc.syscall(numbers[1], 0, ctypes.byref(attr), size, 0) != 0:
        return None, f"sched_getattr: {os.strerror(ctypes.get_errno())}"
    if attr.sched_policy != 0:  # SCHED_OTHER only: leave real-time policies alone
        return None, f"policy {attr.sched_policy} kept"
    attr.size, attr.sched_runtime = size, slice_us * 1000
    if libc.syscall(numbers[0], 0, ctypes.byref(attr), 0) != 0:
        return None, f"sched_setattr: {os.strerror(ctypes.get_errno())}"
    if libc.syscall(numbers[1], 0, ctypes.byref(attr), size, 0) != 0:
        return None, f"sched_getattr: {os.strerror(ctypes.get_errno())}"
    got = int(attr.sched_runtime) // 1000
    if got == 0:
        return None, "this kernel has no custom slices (Linux 6.12+)"
    return got, "" if got == slice_us else f"the kernel keeps a {got} us slice"
