"""An in-memory :class:`~rafale.cluster.channel.ActorChannel` and a clock that moves only
when told: the driver's drain (cluster/drain.py) runs on them as plain code, so loss,
takeover, the gap and resends are tested in milliseconds.

Each fake sender keeps real windows (``actors.stats.Recorder``) and real feed outcomes
(``actors.outcome_buffer.OutcomeBuffer``); a test says what each sent in a second
(:meth:`FakeChannel.second`) and how each behaves: answering, silent (frozen or cut off:
its polls never end), dead (Ray reports it so), on a node that is gone, fenced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rafale.actors.answers import Fence, Phase, PollAnswer, SenderStatus
from rafale.actors.outcome_buffer import OutcomeBuffer
from rafale.actors.stats import Recorder
from rafale.analysis.node_batch import NodeBatch
from rafale.cluster.channel import Answered, Dead, Failed, Reply
from rafale.cluster.drain import ActorBook
from rafale.cluster.tree import NodeAggregator, NodeAnswer, TreeChannel


class FakeClock:
    """Wall and monotonic time, both moved by :meth:`advance` only."""

    def __init__(self, wall_s: float = 1_000_000.0) -> None:
        self.wall_s = wall_s
        self.mono_s = 100.0

    def time(self) -> float:
        return self.wall_s

    def monotonic(self) -> float:
        return self.mono_s

    def advance(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_s += seconds


@dataclass
class FakeSender:
    index: int
    node_id: str
    recorder: Recorder = field(init=False)
    outcomes: OutcomeBuffer = field(init=False)
    windows: list[dict[str, Any]] = field(default_factory=list)
    state: str = Phase.RUNNING
    silent: bool = False           # its polls never end (frozen, or cut off)
    dead: bool = False             # Ray reports it dead
    fenced: Fence | None = None
    in_flight: int = 0

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.index)
        self.outcomes = OutcomeBuffer(self.index)

    def answer(self) -> PollAnswer:
        windows, self.windows = self.windows, []
        status: SenderStatus = {
            "state": self.state, "elapsed_s": 0.0, "sent": 0, "completed": 0, "failed": 0,
            "in_flight": self.in_flight, "start_skew_s": 0.0, "next_row": None,
            "late_switches": 0, "fenced": self.fenced, "catch_up_left": 0, "slice_us": None,
            "error": ""}
        columns = self.outcomes.drain()
        return {"windows": windows, "status": status,
                "outcomes": columns if columns["row"] else None}


class FakeChannel:
    """Senders by index, every control call they got, and the nodes still alive."""

    def __init__(self, actors: int, nodes: Sequence[str] = ("node-a",)) -> None:
        self.senders = [FakeSender(i, nodes[i % len(nodes)]) for i in range(actors)]
        self.nodes = set(nodes)
        self.pending: set[int] = set()
        self.calls: list[tuple[int, str, tuple[Any, ...]]] = []
        self.waited_for: list[list[int]] = []
        self.killed = False
        self.released: list[int] | None = None  # the actors the run ended with, finished
        self.kept_answers: dict[str, str] = {"503": "busy, try later"}

    def books(self, now: float) -> list[ActorBook]:
        return [ActorBook.placed(s.index, s.node_id, {"hostname": f"host-{s.index}"}, now)
                for s in self.senders]

    # ----- what a test makes the senders do --------------------------------------------

    def second(self, second: int, sent: int = 10, *, rows: Iterable[Iterable[int]] = ()
               ) -> None:
        """Every sender not silent nor dead sent ``sent`` requests in ``second`` (all
        answered 200) and finished these feed rows (one list per sender)."""
        finished = list(rows)
        for sender in self.senders:
            if sender.dead or sender.silent:
                continue
            recorder = sender.recorder
            recorder.add_intended(sent)
            for _ in range(sent):
                recorder.on_sent(100, False)
                recorder.on_completed(200, "2", "127.0.0.1", 10, 1000, 900, 300, 800)
            recorder.roll(second + 1, in_flight=0, cpu_s_total=0.0, loops_total=0)
            sender.windows += recorder.drain()
            for row in (finished[sender.index] if sender.index < len(finished) else ()):
                sender.outcomes.add(row, 200, "", 1000, 1, "127.0.0.1", second)
            sender.outcomes.roll()

    def calls_of(self, method: str) -> list[tuple[int, tuple[Any, ...]]]:
        return [(actor, args) for actor, m, args in self.calls if m == method]

    # ----- the protocol ----------------------------------------------------------------

    def ask(self, actor: int) -> None:
        self.pending.add(actor)

    def replies(self, actors: Sequence[int], wait_s: float) -> dict[int, Reply]:
        found: dict[int, Reply] = {}
        for actor in actors:
            sender = self.senders[actor]
            if actor not in self.pending or sender.silent:
                continue
            self.pending.discard(actor)
            found[actor] = (Dead("died: ActorDiedError (Ray reported its death)")
                            if sender.dead else Answered(sender.answer()))
        return found

    def call(self, actor: int, method: str, *args: Any) -> None:
        self.calls.append((actor, method, args))
        if method == "stop":
            self.senders[actor].state = Phase.DONE

    def call_all(self, actors: Sequence[int], method: str, *args: Any,
                 wait_for: Sequence[int] = (), timeout_s: float = 0.0) -> None:
        for actor in actors:
            self.call(actor, method, *args)
        self.waited_for.append(list(wait_for))

    def first_answers(self, actor: int, timeout_s: float) -> dict[str, str] | None:
        return None if self.senders[actor].dead else dict(self.kept_answers)

    def alive_nodes(self) -> set[str] | None:
        return set(self.nodes)

    def kill_all(self) -> None:
        self.killed = True

    def node_batches(self) -> list[NodeBatch]:
        return []

    def release(self, finished: Sequence[int]) -> None:
        self.released = list(finished)
        self.killed = True


class FakeLinks:
    """A node aggregator per node of a FakeChannel (tree mode, cluster/tree.py), in memory;
    a test may make a node's aggregator dead (Ray reports it so) or silent."""

    def __init__(self, channel: FakeChannel, run_id: str) -> None:
        by_node: dict[str, list[int]] = {}
        for sender in channel.senders:
            by_node.setdefault(sender.node_id, []).append(sender.index)
        self.aggregators = {node: NodeAggregator(channel, actors, run_id, node, 0.0)
                            for node, actors in by_node.items()}
        self.pending: set[str] = set()
        self.dead: set[str] = set()
        self.silent: set[str] = set()
        self.polls = 0
        self.killed = False

    def ask(self, node: str) -> None:
        self.pending.add(node)

    def answers(self, nodes: Sequence[str], wait_s: float
                ) -> dict[str, NodeAnswer | Dead | Failed]:
        found: dict[str, NodeAnswer | Dead | Failed] = {}
        for node in nodes:
            if node not in self.pending or node in self.silent:
                continue
            self.pending.discard(node)
            self.polls += 1
            found[node] = (Dead("died: ActorDiedError (Ray reported its death)")
                           if node in self.dead else self.aggregators[node].poll())
        return found

    def kill_all(self) -> None:
        self.killed = True


def tree_of(channel: FakeChannel, run_id: str) -> tuple[TreeChannel, FakeLinks]:
    """The drain's channel in tree mode over a FakeChannel, and its aggregators."""
    links = FakeLinks(channel, run_id)
    return TreeChannel(channel, links, {s.index: s.node_id for s in channel.senders}), links
