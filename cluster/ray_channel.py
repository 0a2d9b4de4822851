"""The :class:`~rafale.cluster.channel.ActorChannel` of a real run: the senders as Ray actor
handles (``SenderActor``), polled with ``ray.wait`` and ``ray.get``; Ray's errors become the
channel's replies (dead, failed, or not ready: unreachable for now)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayError

from rafale.analysis.node_batch import NodeBatch
from rafale.cluster import placement
from rafale.cluster.channel import Answered, Dead, Failed, Reply
from rafale.cluster.warm import WarmSenders

__all__ = ["RayChannel", "take_ready"]

K = TypeVar("K")


def take_ready(pending: dict[K, Any], keys: Sequence[K], wait_s: float
               ) -> dict[K, Any | Dead | Failed]:
    """The outstanding calls (``pending``: key -> ObjectRef) of these keys that ended within
    ``wait_s``, taken out of ``pending``: each one's value, or Dead (Ray reported the actor
    dead) or Failed. An actor unreachable for now is left out (asked again next tick)."""
    refs = {key: pending[key] for key in keys if key in pending}
    if not refs:
        return {}
    ready = set(ray.wait(list(refs.values()), num_returns=len(refs), timeout=wait_s)[0])
    found: dict[K, Any | Dead | Failed] = {}
    for key, ref in refs.items():
        if ref not in ready:
            continue
        del pending[key]
        try:
            found[key] = ray.get(ref, timeout=0)
        except ActorUnavailableError:
            continue  # unreachable for now: asked again next tick, the lease decides
        except RayActorError as exc:
            found[key] = Dead(f"died: {type(exc).__name__} (Ray reported its death)")
        except RayError as exc:
            found[key] = Failed(f"poll failed ({type(exc).__name__})")
    return found


class RayChannel:
    """The run's actors as Ray actor handles (``SenderActor``), by index."""

    def __init__(self, handles: Sequence[Any] | Mapping[int, Any],
                 node_ids: Sequence[str] = (), warm: WarmSenders | None = None) -> None:
        # by run-wide index (a node's aggregator holds only its node's senders)
        self.handles = dict(handles) if isinstance(handles, Mapping) else dict(
            enumerate(handles))
        self.node_ids = list(node_ids)
        self.warm = warm  # the series' idle senders, given the finished ones at the end
        self._pending: dict[int, Any] = {}  # actor -> its outstanding poll (an ObjectRef)

    def ask(self, actor: int) -> None:
        if actor not in self._pending:
            self._pending[actor] = self.handles[actor].poll.remote()

    def replies(self, actors: Sequence[int], wait_s: float) -> dict[int, Reply]:
        return {actor: got if isinstance(got, Dead | Failed) else Answered(got)
                for actor, got in take_ready(self._pending, actors, wait_s).items()}

    def call(self, actor: int, method: str, *args: Any) -> None:
        getattr(self.handles[actor], method).remote(*args)

    def call_all(self, actors: Sequence[int], method: str, *args: Any,
                 wait_for: Sequence[int] = (), timeout_s: float = 0.0) -> None:
        refs = {actor: getattr(self.handles[actor], method).remote(*args) for actor in actors}
        waited = [refs[actor] for actor in wait_for if actor in refs]
        if waited:
            ray.wait(waited, num_returns=len(waited), timeout=timeout_s)

    def first_answers(self, actor: int, timeout_s: float) -> dict[str, str] | None:
        with contextlib.suppress(RayActorError, GetTimeoutError):
            return dict(ray.get(self.handles[actor].first_answers.remote(), timeout=timeout_s))
        return None

    def alive_nodes(self) -> set[str] | None:
        return placement.alive_node_ids()

    def kill_all(self) -> None:
        placement.kill_all(list(self.handles.values()))

    def node_batches(self) -> list[NodeBatch]:
        return []

    def release(self, finished: Sequence[int]) -> None:
        kept = sorted(set(finished)) if self.warm is not None else []
        if self.warm is not None and kept:
            self.warm.give([self.handles[i] for i in kept], [self.node_ids[i] for i in kept])
        placement.kill_all([h for i, h in self.handles.items() if i not in kept])
