"""What a wake-up costs on this machine: the same small piece of work, back to back and
after each of a series of short sleeps, as CPU time per turn (user+system of this process).

At low rates a sender wakes once or twice per request; on a virtual machine the work right
after each wake-up can cost several times what it costs hot, and that, not the sender's own
code, sets its CPU per request (see benchmarks/README.md).

    python -m benchmarks.wakeup [--turns 4000] [--sleeps-ms 0,0.5,2]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

__all__ = ["cpu_us_per_turn", "main"]


def _work() -> int:
    total = 0
    for i in range(300):
        total += i
    return total


def cpu_us_per_turn(turns: int, sleep_s: float) -> float:
    """CPU µs per turn of ``_work()``, with a ``sleep_s`` sleep before each (0: none)."""
    start = time.process_time()
    for _ in range(turns):
        if sleep_s:
            time.sleep(sleep_s)
        _work()
    return (time.process_time() - start) * 1e6 / turns


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wakeup",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=4000, help="turns per case (>= 1)")
    parser.add_argument("--sleeps-ms", default="0,0.5,2",
                        help="comma list of sleeps before each turn, ms (0: back to back)")
    args = parser.parse_args(argv)
    if args.turns < 1:
        parser.error(f"--turns must be >= 1, got {args.turns}")
    try:
        sleeps_ms = [float(s) for s in args.sleeps_ms.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sleeps-ms must be a comma list of numbers, got {args.sleeps_ms!r}")
    if not sleeps_ms or any(not 0 <= s < 1000 for s in sleeps_ms):
        parser.error(f"--sleeps-ms must list sleeps of 0 to 999 ms, got {args.sleeps_ms!r}")
    for sleep_ms in sleeps_ms:
        us = cpu_us_per_turn(args.turns, sleep_ms / 1000)
        label = "back to back" if sleep_ms == 0 else f"after a {sleep_ms:g} ms sleep"
        print(f"{label:>24}: {us:7.1f} µs CPU per turn", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
