"""rafale doctor: the pure checks (the Ray part runs in test_placement.py)."""

from __future__ import annotations

import io
import os

import pytest

from rafale.cluster.doctor import NodeLimits, check_node, print_findings, read_limits, worst
from rafale.cluster.options import FD_OVERHEAD

GOOD = NodeLimits("n", 1_048_576, 1_048_576, (1024, 65535), 65535, 1, 0, True)


def limits(**changes: object) -> NodeLimits:
    values = {**GOOD.__dict__, **changes}
    return NodeLimits(**values)  # type: ignore[arg-type]


def by_check(found: NodeLimits, planned: int | None, senders: int = 1) -> dict[str, str]:
    return {f.check: f.severity for f in check_node(found, planned, senders)}


@pytest.mark.parametrize(
    ("found", "planned", "senders", "check", "severity"),
    [
        (GOOD, 10_000, 2, "open files", "ok"),
        (limits(nofile_soft=1024), None, 1, "open files", "warn"),
        (limits(nofile_soft=1024), 2000, 1, "open files", "warn"),
        (limits(nofile_soft=1024, nofile_hard=2048), 2000, 1, "open files", "error"),
        (limits(port_range=(32768, 60999)), 10_000, 2, "ephemeral ports", "warn"),
        (limits(port_range=(32768, 60999)), 20_000, 2, "ephemeral ports", "error"),
        (limits(port_range=(32768, 60999)), 100, 2, "ephemeral ports", "ok"),
        (limits(port_range=None), 100, 1, "ephemeral ports", "info"),
        (limits(somaxconn=128), None, 1, "somaxconn", "warn"),
        (limits(tcp_tw_reuse=2), None, 1, "tcp_tw_reuse", "info"),
        (limits(tcp_tw_reuse=None), None, 1, "tcp_tw_reuse", "info"),
    ],
)
def test_check_node(found: NodeLimits, planned: int | None, senders: int, check: str,
                    severity: str) -> None:
    assert by_check(found, planned, senders)[check] == severity


@pytest.mark.parametrize(
    ("found", "planned", "expected"),
    [(GOOD, 20_000, "ok"), (limits(nofile_hard=100, nofile_soft=100), 1000, "error"),
     (limits(somaxconn=128), 10, "warn")],
)
def test_worst_decides_the_exit(found: NodeLimits, planned: int, expected: str) -> None:
    assert worst(check_node(found, planned)) == expected


def test_hard_problem_advice_names_the_numbers() -> None:
    finding = check_node(limits(nofile_soft=1024, nofile_hard=2048), 5000)[0]
    assert str(5000 + FD_OVERHEAD) in finding.advice and "ulimit -n" in finding.advice
    assert FD_OVERHEAD == 256  # what a sender keeps open besides its connections


def test_read_limits_here_and_print() -> None:
    here = read_limits("me")
    assert here.node == "me" and 0 < here.nofile_soft <= here.nofile_hard
    out = io.StringIO()
    print_findings(check_node(here, 100), out)
    assert "open files" in out.getvalue()


@pytest.mark.parametrize(("nice", "can_lower", "severity"), [
    (0, True, "ok"), (15, True, "info"), (15, False, "warn"), (None, None, "info"),
])
def test_worker_niceness(nice: int | None, can_lower: bool | None, severity: str) -> None:
    found = {f.check: f for f in check_node(limits(niceness=nice, can_lower_niceness=can_lower))}
    finding = found["worker niceness"]
    assert finding.severity == severity
    if severity == "warn":
        assert "RAY_worker_niceness=0" in finding.advice and finding.value == "15"


def test_read_limits_reads_this_threads_niceness() -> None:
    here = read_limits()
    assert here.niceness == os.getpriority(os.PRIO_PROCESS, 0)
    assert here.can_lower_niceness is True  # at niceness <= 0 there is nothing to lower
