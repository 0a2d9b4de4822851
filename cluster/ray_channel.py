"""The :class:`~rafale.cluster.channel.ActorChannel` of a real run: the senders as Ray actor
handles (``SenderActor``), polled with ``ray.wait`` and ``ray.get``; Ray's errors become the
channel's replies (dead, failed, or not ready: unreachable for now)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayError

from rafale.cluster import placement
from rafale.cluster.channel import Answered, Dead, Failed, Reply
from rafale.cluster.warm import WarmSenders

__all__ = ["RayChannel"]


class RayChannel:
    """The run's actors as Ray actor handles (``SenderActor``), by index."""

    def __init__(self, handles: Sequence[Any], node_ids: Sequence[str] = (),
                 warm: WarmSenders | None = None) -> None:
        self.handles = list(handles)
        self.node_ids = list(node_ids)
        self.warm = warm  # the series' idle senders, given the finished ones at the end
        self._pending: dict[int, Any] = {}  # actor -> its outstanding poll (an ObjectRef)

    def ask(self, actor: int) -> None:
        if actor not in self._pending:
            self._pending[actor] = self.handles[actor].poll.remote()

    def replies(self, actors: Sequence[int], wait_s: float) -> dict[int, Reply]:
        refs = {actor: self._pending[actor] for actor in actors if actor in self._pending}
        if not refs:
            return {}
        ready = set(ray.wait(list(refs.values()), num_returns=len(refs), timeout=wait_s)[0])
        found: dict[int, Reply] = {}
        for actor, ref in refs.items():
            if ref not in ready:
                continue
            del self._pending[actor]
            try:
                found[actor] = Answered(ray.get(ref, timeout=0))
            except ActorUnavailableError:
                continue  # unreachable for now: asked again next tick, the lease decides
            except RayActorError as exc:
                found[actor] = Dead(f"died: {type(exc).__name__} (Ray reported its death)")
            except RayError as exc:
                found[actor] = Failed(f"poll failed ({type(exc).__name__})")
        return found

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
        placement.kill_all(self.handles)

    def release(self, finished: Sequence[int]) -> None:
        kept = sorted(set(finished)) if self.warm is not None else []
        if self.warm is not None and kept:
            self.warm.give([self.handles[i] for i in kept], [self.node_ids[i] for i in kept])
        placement.kill_all([h for i, h in enumerate(self.handles) if i not in kept])
