"""SenderActor: the thin wrapper that the driver turns into a Ray actor.

A plain class (no ray import at module level) so that it is testable in-process.
:meth:`SenderActor.start` runs :meth:`Engine.run` in its own thread and returns at once,
so the control calls (pause, resume, set_rate, set_stripe, stop, drain, status) answer
while the loop runs. Only the engine thread touches curl; the control calls go through
the engine's thread-safe command queue.

The driver wraps it with ``ray.remote(num_cpus=1, max_concurrency=...)``: a threaded
actor, so a control call is never queued behind another one.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from rafale.actors.answers import PollAnswer, SenderStatus
from rafale.actors.checks import check_rate
from rafale.actors.config import EngineConfig
from rafale.actors.engine import Engine
from rafale.actors.handles import libcurl_version
from rafale.actors.priority import Priority, renice_process


def _node_id() -> str:
    """The Ray node id of this process, or "" outside Ray."""
    try:
        import ray  # lazy: actors/ must load without Ray

        if not ray.is_initialized():
            return ""
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - no Ray, or no runtime context: not in Ray
        return ""


def _local_ip() -> str:
    """The address this host uses to reach the network (no packet is sent)."""
    try:
        from ray.util import get_node_ip_address  # lazy, as above

        return str(get_node_ip_address())
    except Exception:  # noqa: BLE001
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "127.0.0.1"


class SenderActor:
    """One sender engine, run in a thread, with control calls that answer at once."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.priority = renice_process(0)  # Ray starts workers at niceness 15
        self._engine = Engine(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return (f"SenderActor(actor {self.config.actor_index}/{self.config.actor_count}, "
                f"{self._engine.status()['state']})")

    # ----- where am I ------------------------------------------------------------------

    def where(self) -> dict[str, Any]:
        """Ray node id ("" outside Ray), hostname, ip, pid, libcurl version and niceness (as
        the worker started, and now) of this actor."""
        return {
            "node_id": _node_id(),
            "hostname": socket.gethostname(),
            "ip": _local_ip(),
            "pid": os.getpid(),
            "libcurl": libcurl_version(),
            "niceness_started": self.priority.started,
            "niceness": self.priority.now,
            "niceness_error": self.priority.error,
        }

    # ----- lifecycle -------------------------------------------------------------------

    def reset(self, config: EngineConfig, join_s: float = 5.0) -> dict[str, Any]:
        """A fresh engine for the next run of a series (a warm sender: no new Ray worker);
        returns :meth:`where`. Refused while the previous engine still runs after
        ``join_s`` (the driver then starts a new sender instead)."""
        if self._thread is not None:
            self._thread.join(join_s)
            if self._thread.is_alive():
                raise RuntimeError(f"actor {self.config.actor_index} is still sending; "
                                   "a sender is reset only once its engine has finished")
        self.config = config
        self._engine = Engine(config)
        self._thread = None
        self._error = None
        return self.where()

    def start(self, start_at_s: float | None = None) -> None:
        """Run the engine in a thread from ``start_at_s`` (epoch seconds); return at once."""
        if self._thread is not None:
            raise RuntimeError("this sender was already started: it runs once, "
                               "reset() it for another run")
        again = renice_process(0)  # threads Ray started since __init__, if any
        self.priority = Priority(self.priority.started, again.now,
                                 again.error or self.priority.error)
        self._thread = threading.Thread(
            target=self._run, args=(start_at_s,), daemon=True,
            name=f"rafale-engine-{self.config.actor_index}",
        )
        self._thread.start()

    def _run(self, start_at_s: float | None) -> None:
        try:
            self._engine.run(start_at_s)
        except BaseException as exc:  # noqa: BLE001 - reported by join()/status()
            self._error = exc

    def join(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the engine to finish; True once it has.

        Re-raises an exception that ended the engine thread (a bug, not a request
        failure: those are data in the windows).
        """
        if self._thread is None:
            return False
        self._thread.join(max(timeout_s, 0.0))
        if self._thread.is_alive():
            return False
        if self._error is not None:
            raise RuntimeError(f"engine of actor {self.config.actor_index} failed: "
                               f"{self._error!r}") from self._error
        return True

    # ----- control (any thread) --------------------------------------------------------

    def drain(self) -> list[dict[str, Any]]:
        """Finished windows since the last drain, as plain data."""
        return self._engine.drain()

    def poll(self) -> PollAnswer:
        """The driver's one call per second: the finished windows, the status and (``once``
        feeds) the outcomes since the last poll; renews the lease (see Engine.renew)."""
        return {"windows": self.drain(), "status": self.status(),
                "outcomes": self.drain_outcomes()}

    def first_answers(self) -> dict[str, str]:
        """The first answer body of each status the run keeps (``keep_answers``)."""
        return self._engine.first_answers()

    def drain_outcomes(self) -> dict[str, list[Any]] | None:
        """Outcomes of the feed rows finished since the last call (``once`` feeds), or None."""
        return self._engine.drain_outcomes()

    def status(self) -> SenderStatus:
        """Engine status plus ``error`` (repr of an exception that ended the loop, or "")."""
        return {**self._engine.status(),
                "error": "" if self._error is None else repr(self._error)}

    # Once the engine has finished, control calls are no-ops: its wake-up fd is closed.

    def _finished(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def pause(self) -> None:
        if not self._finished():
            self._engine.pause()

    def resume(self) -> None:
        if not self._finished():
            self._engine.resume()

    def set_rate(self, rate_per_s: float) -> None:
        rate = check_rate(rate_per_s)  # a bad rate is refused even once the run is over
        if not self._finished():
            self._engine.set_rate(rate)

    def set_stripe(self, index: int, count: int, from_row: int | None = None,
                   from_k: int | None = None) -> None:
        if not self._finished():
            self._engine.set_stripe(index, count, from_row, from_k)

    def catch_up(self, ranges: list[tuple[int, int, int]]) -> None:
        if not self._finished():
            self._engine.catch_up(ranges)

    def add_rows(self, rows: list[int]) -> None:
        if not self._finished():
            self._engine.add_rows(rows)

    def stop(self) -> None:
        if not self._finished():
            self._engine.stop()
