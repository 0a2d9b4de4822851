"""How the driver talks to its senders: a tiny protocol, and Ray behind it.

The drain (cluster/drain.py) asks each actor for its windows (at most one poll outstanding
per actor), takes the replies that came within a wait, and sends control calls.
:class:`~rafale.cluster.ray_channel.RayChannel` does it with Ray actor handles; the tests
use an in-memory channel (``tests/cluster/fakechannel.py``), so that loss, takeover, the gap and
resends run as plain code in milliseconds. Actors are named by their index in the run.
No Ray here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rafale.actors.answers import PollAnswer
from rafale.analysis.node_batch import NodeBatch

__all__ = ["ActorChannel", "Answered", "Dead", "Failed", "Reply", "tag_windows"]


def tag_windows(windows: Sequence[dict[str, Any]], run_id: str, node: str) -> int:
    """Tag a sender's drained windows with their run and node (the contract's rows carry
    both); the last second they hold (-1: none)."""
    for window in windows:
        window["run_id"] = run_id
        window["node"] = node
    return max((int(window["second"]) for window in windows), default=-1)


@dataclass(frozen=True)
class Answered:
    """The actor answered its poll. Through a node's aggregator (cluster/tree.py) the
    windows travel in the node's batch instead: ``last_second`` is then the last second
    they held (-1: none); directly, it is read from the windows."""

    answer: PollAnswer
    last_second: int = -1


@dataclass(frozen=True)
class Dead:
    """The actor is gone for good (Ray reported its death): it will never answer again."""

    why: str


@dataclass(frozen=True)
class Failed:
    """The poll failed on the actor; it is asked again on the next tick."""

    why: str


Reply = Answered | Dead | Failed


class ActorChannel(Protocol):
    """What the drain needs from the senders of one run."""

    def ask(self, actor: int) -> None:
        """A poll to this actor, unless one is outstanding."""

    def replies(self, actors: Sequence[int], wait_s: float) -> dict[int, Reply]:
        """The outstanding polls of these actors that ended within ``wait_s``. An actor
        unreachable for now is left out (its poll cleared: asked again next tick)."""

    def call(self, actor: int, method: str, *args: Any) -> None:
        """A control call (stop, set_stripe, catch_up, add_rows...), not waited for."""

    def call_all(self, actors: Sequence[int], method: str, *args: Any,
                 wait_for: Sequence[int] = (), timeout_s: float = 0.0) -> None:
        """The same call to each actor; waits at most ``timeout_s`` for those in
        ``wait_for`` to take it."""

    def first_answers(self, actor: int, timeout_s: float) -> dict[str, str] | None:
        """The first answer body the actor kept for each status, or None if it cannot say."""

    def alive_nodes(self) -> set[str] | None:
        """The ids of the alive nodes, or None when the cluster cannot tell right now."""

    def kill_all(self) -> None:
        """End every actor of the run (their CPUs freed for the next run)."""

    def node_batches(self) -> list[NodeBatch]:
        """The nodes' windows that came with the replies since the last call, as their
        aggregators merged them (tree mode, cluster/tree.py); [] when senders answer
        with their windows themselves."""

    def release(self, finished: Sequence[int]) -> None:
        """The run is over: the ``finished`` actors (alive, their engine done) may serve
        the next run of a series (warm senders); every other actor is ended."""
