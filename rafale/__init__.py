"""rafale: send HTTP requests at a controlled, near-constant rate, one libcurl multi sender
per CPU, placed by Ray on one machine or across many client hosts.

The public API, in one place::

    import rafale

    with rafale.Target() as t:                       # the embedded Caddy target (loopback)
        run = rafale.start(urls=t.https_url, rate_per_s=1000, duration_s=10,
                           cacert=str(t.ca_file))      # -> rafale.Run, at once
        result = run.wait()                          # -> rafale.RunResult
        # or run.live(): live charts in Jupyter until the end (also rafale.live(run))
    result.frame()                                   # per-second pandas DataFrame
    rafale.load("results/r1")                        # a saved result (pandas, pyarrow only)
    rafale.plots.throughput(result)                  # matplotlib Figures
    rafale.frames.per_address(result)                # tables
    rafale.compare("results/r1", "results/r2")      # per metric: change, interval, verdict
    rafale.repeat(3, out="results/r3", urls=...)     # a series: DIR/1 .. DIR/3, one side

Everything is imported on first use: ``import rafale`` (and ``rafale.analysis``,
``rafale.load``, ``rafale.compare``, ``rafale.plots``, ``rafale.frames``) never imports Ray
or pycurl, so saved results load on a laptop with pandas, pyarrow and matplotlib only.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rafale.analysis import frames, plots
    from rafale.analysis.store import load
    from rafale.analysis.verdict import compare
    from rafale.cluster.live import live
    from rafale.cluster.run import Run, RunResult, start
    from rafale.cluster.series import repeat
    from rafale.cluster.spec import RunSpec
    from rafale.cluster.target import Target

try:
    __version__ = version("rafale")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["Run", "RunResult", "RunSpec", "Target", "__version__", "compare", "frames", "live",
           "load", "plots", "repeat", "start"]

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "start": ("rafale.cluster.run", "start"),
    "repeat": ("rafale.cluster.series", "repeat"),
    "Run": ("rafale.cluster.run", "Run"),
    "RunResult": ("rafale.cluster.run", "RunResult"),
    "RunSpec": ("rafale.cluster.spec", "RunSpec"),
    "Target": ("rafale.cluster.target", "Target"),
    "live": ("rafale.cluster.live", "live"),
    "load": ("rafale.analysis.store", "load"),
    "compare": ("rafale.analysis.verdict", "compare"),
    "plots": ("rafale.analysis.plots", None),
    "frames": ("rafale.analysis.frames", None),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'rafale' has no attribute {name!r}; the public API "
                             f"is {', '.join(__all__)}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
