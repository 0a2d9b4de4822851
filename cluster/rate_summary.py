"""The run's target against what it achieved: the schedule's rate (from the spec, never a
count divided by the elapsed time), the requests it held, how many were sent, and per stage
for staged or ramped runs."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from rafale.cluster.spec import RunSpec

REACHED_RATIO = 0.99  # sent / scheduled at or above this, and nothing dropped: reached


def target_summary(spec: RunSpec, summary: dict[str, Any],
                   per_second: pd.DataFrame) -> dict[str, Any]:
    """{'model', 'rate_per_s', 'scheduled', 'sent', 'ratio', 'reached', 'stages',
    'held_per_s'}: ``held_per_s`` is the rate completed in the whole seconds of the last
    stage when it holds a constant rate after a ramp or other stages (else None): the
    rate held, which a mean over the ramp understates."""
    schedule = spec.schedule()
    requests = summary.get("requests", {})
    if schedule is None:
        return {"model": "closed", "rate_per_s": None, "reached": True}
    scheduled = schedule.count_due(spec.run_s)  # a feed sent once may end before its stages
    sent = int(requests.get("sent", 0))
    ratio = sent / scheduled if scheduled else 1.0
    rates = [max(s.start_rate_per_s, s.end_rate_per_s) for s in schedule.stages]
    stages = []
    t0 = 0.0
    by_second = per_second.set_index("second")["sent"] if not per_second.empty else None
    completed = (per_second.set_index("second")["completed"] if not per_second.empty
                 else None)
    held = None
    for stage in schedule.stages:
        if t0 >= spec.run_s:
            break
        t1 = min(t0 + stage.duration_s, spec.run_s)
        seconds = range(math.ceil(t0), math.floor(t1))  # whole seconds inside the stage
        target = (stage.start_rate_per_s + stage.end_rate_per_s) / 2
        got = ([float(by_second.get(s, 0)) for s in seconds] if by_second is not None
               else [])
        mean = sum(got) / len(got) if got else None
        stages.append({"start_s": t0, "end_s": t1, "target_per_s": target,
                       "sent_per_s": mean,
                       "ratio": (mean / target) if mean is not None and target else None})
        if (stage is schedule.stages[-1] and len(schedule.stages) > 1 and seconds
                and stage.start_rate_per_s == stage.end_rate_per_s and completed is not None):
            held = sum(float(completed.get(s, 0)) for s in seconds) / len(seconds)
        t0 = t1
    return {
        "model": "open", "rate_per_s": max(rates), "mean_rate_per_s": scheduled / spec.run_s,
        "duration_s": spec.run_s, "scheduled": scheduled, "sent": sent, "ratio": ratio,
        "late": int(requests.get("late", 0)), "dropped": int(requests.get("dropped", 0)),
        "reached": ratio >= REACHED_RATIO and not requests.get("dropped"),
        "stages": stages, "held_per_s": held,
    }
