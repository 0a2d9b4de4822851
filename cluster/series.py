"""A series: the same run N times in a row into DIR/1 .. DIR/N, listed in DIR/repeat.json
(``rafale run --repeat N --out DIR``, ``rafale.repeat(N, out=DIR, ...)``).

A series' directory stands for its runs wherever a side of a comparison is given
(``rafale compare before after``): with three runs a side the interval covers the noise
between runs. Its runs reuse their senders from one run to the next (cluster/warm.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rafale.analysis.store import write_repeat
from rafale.cluster.meta import Ended
from rafale.cluster.spec import RunSpec, unknown_option_message
from rafale.cluster.warm import WarmSenders

__all__ = ["repeat", "repeat_outs"]


def repeat_outs(times: int, out: str | os.PathLike[str] | None, name: str = "times",
                out_name: str = "out=DIR") -> list[str]:
    """Where each run of a series saves: DIR/1 .. DIR/N; ValueError naming a bad count or
    a missing ``out`` (``name`` and ``out_name``: how the caller spells them, e.g.
    ``--repeat`` and ``--out DIR``)."""
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError(f"{name} {times!r} is not a number of runs; expected 1 or more "
                         f"({name} 3 with {out_name} runs the spec 3 times into DIR/1 .. "
                         "DIR/3)")
    if not out:
        raise ValueError(f"{name} {times} needs {out_name}: the runs are saved in DIR/1 "
                         f".. DIR/{times}, listed in DIR/repeat.json")
    return [str(Path(out) / str(i)) for i in range(1, times + 1)]


def repeat(times: int, *, out: str | os.PathLike[str], spec: RunSpec | None = None,
           on_run: Callable[[int, Any], None] | None = None, **options: Any) -> list[Any]:
    """Run the same spec ``times`` times, one after another, into ``out``/1 .. ``out``/N
    and list them in ``out``/repeat.json (rewritten after each run, so a series cut short
    keeps what it ran); returns the results (``RunResult``), stopping after an interrupted
    run. ``options`` are RunSpec fields, as for ``rafale.start``; ``on_run(number, result)``
    is called after each run. Bad input raises ValueError before any request is sent."""
    from rafale.cluster.run import start

    try:
        base = spec.replace(**options) if spec is not None else RunSpec.parse(**options)
    except TypeError as exc:
        raise ValueError(unknown_option_message(options, str(exc))) from None
    specs = [base.replace(out=o) for o in repeat_outs(times, out)]
    results: list[Any] = []
    with WarmSenders() as warm:
        for number, one in enumerate(specs, 1):
            result = start(spec=one, warm=warm).wait()
            results.append(result)
            write_repeat(out, [s.out for s in specs[:number] if s.out])
            if on_run is not None:
                on_run(number, result)
            if result.meta.get("ended") == Ended.INTERRUPTED:
                break
    return results
