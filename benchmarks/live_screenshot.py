"""The README's picture of the live notebook view: ``python -m benchmarks.live_screenshot``.

A real short run against the embedded target (2 actors, HTTP/2, pinned DNS: a ramp, a
pause, a higher rate), then the live view's own picture of it once it has ended
(``cluster/live.py``: the figure ``run.live()`` leaves in a notebook), written as PNG.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import rafale
from rafale.analysis import plots
from rafale.cluster import live

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "live.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG to write (default {OUT})")
    parser.add_argument("--rate-per-s", type=float, default=600.0)
    parser.add_argument("--duration-s", type=float, default=16.0)
    args = parser.parse_args(argv)
    rate = args.rate_per_s
    with rafale.Target() as target:
        run = rafale.start(urls=target.https_url, resolve=target.resolve,
                           cacert=str(target.ca_file), http="2", dns="pinned",
                           rate_per_s=rate, ramp_s=3, duration_s=args.duration_s, actors=2,
                           label="live view")
        time.sleep(args.duration_s * 0.35)
        run.pause()
        time.sleep(2.0)
        run.resume()
        time.sleep(args.duration_s * 0.2)
        run.set_rate(rate * 1.5)
        run.wait()
        fig, status = live.picture(run, live.title(run), final=True)
    path = plots.save_png(fig, args.out)
    print(f"{status}\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
