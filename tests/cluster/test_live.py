"""The live view's pure parts: its status line (running, and ended from the summary) and the
checks of its arguments. The view itself runs for real in tests/test_notebooks.py (in a
kernel, by nbclient) and tests/cluster/test_run.py (the terminal's progress line)."""

from __future__ import annotations

from typing import Any

import pytest

from rafale.cluster.live import check_times, in_kernel, status_line
from rafale.cluster.progress import Snapshot


def snap(**changes: Any) -> Snapshot:
    values: dict[str, Any] = {
        "elapsed_s": 12.04, "total_s": 30.0, "state": "running", "second": 10,
        "target_per_s": 1000.0, "sent_per_s": 1000.0, "achieved_per_s": 998.0,
        "p50_corrected_us": 800, "p99_corrected_us": 4000, "lag_p99_us": 300,
        "sent": 11_012, "completed": 10_990, "failed": 12, "late": 3, "dropped": 0,
        "in_flight": 10, "actors_alive": 2, "actors_total": 2}
    return Snapshot(**{**values, **changes})


@pytest.mark.parametrize(("shown", "summary", "line"), [
    (snap(), None, "12.0/30 s · running · rate 998/s (target 1,000/s) · completed 10,990 · "
                   "failed 12"),
    (snap(second=None, completed=0, failed=0, target_per_s=0.0), None,
     "12.0/30 s · running · rate - (target 0/s) · completed 0 · failed 0"),
    (snap(state="stopped", second=None),
     {"duration_s": 11, "rate_per_s": {"intended": 1001.1, "completed": 999.6}},
     "ended (stopped) after 11 s · mean rate 1,000/s (target 1,001/s) · completed 10,990 · "
     "failed 12"),
])
def test_status_line(shown: Snapshot, summary: dict[str, Any] | None, line: str) -> None:
    assert status_line(shown, summary) == line


@pytest.mark.parametrize(("every_s", "for_s", "message"), [
    (0, None, "every_s must be a number of seconds > 0, not 0"),
    (-1.0, 5, "every_s .* not -1.0"),
    (float("nan"), None, "every_s .* not nan"),
    ("1", None, "every_s .* not '1'"),
    (1.0, -2, r"for_s must be None \(until the run ends\) or a number of seconds >= 0, not -2"),
    (1.0, float("nan"), "for_s .* not nan"),
])
def test_bad_times_are_refused(every_s: Any, for_s: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_times(every_s, for_s)


def test_good_times_pass_and_pytest_is_no_kernel() -> None:
    check_times(0.5, None)
    check_times(1, 0)
    assert not in_kernel()  # so run.live() here prints the progress line
