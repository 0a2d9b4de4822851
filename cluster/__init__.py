"""rafale: the driver. ``rafale.start(...)`` starts a run (imports Ray on first use only)."""

from __future__ import annotations

from typing import Any

__all__ = ["start"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `rafale report` and analysis-only use never import ray or pycurl.
    if name == "start":
        from rafale.cluster.run import start

        return start
    raise AttributeError(f"module rafale.cluster has no attribute {name!r}")
