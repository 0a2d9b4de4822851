"""Faults, counting and security of one engine (no Ray); the helpers the tests share.

``books_balance`` is the "nothing lost, nothing double-counted" check that every test in
this package runs on its windows: it is stricter than the totals alone, since it holds
for every second of the run.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from hdrh.histogram import HdrHistogram

from rafale.actors.config import EngineConfig
from rafale.actors.engine import Engine
from rafale.actors.stats import error_kind
from rafale.cluster.target import Target
from tests.helpers import Windows, by_second, plain_config, target_config, total  # noqa: F401

LATE_AFTER_US = 1000  # the engine's default tolerance (EngineConfig.late_after_s)


def run_engine(
    config: EngineConfig,
    during: Callable[[float], None] | None = None,
    lead_s: float = 0.2,
    engine_box: list[Engine] | None = None,
) -> tuple[Engine, Windows, float]:
    """Run one engine in a thread; ``during(start_monotonic)`` runs meanwhile in this thread.

    Schedule time 0 is ``lead_s`` from now, so ``during`` can act at known run times (and
    read the engine from ``engine_box``, filled before it starts).
    Returns the engine, all its windows, and the run's wall time from schedule time 0.
    """
    engine = Engine(config)
    if engine_box is not None:
        engine_box.append(engine)
    start_at = time.time() + lead_s
    start_mono = time.monotonic() + lead_s
    failure: list[BaseException] = []

    def body() -> None:
        try:
            engine.run(start_at)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failure.append(exc)

    thread = threading.Thread(target=body, name="engine", daemon=True)
    thread.start()
    try:
        if during is not None:
            during(start_mono)
    finally:
        limit_s = lead_s + config.duration_s + config.grace_s + 10.0
        thread.join(timeout=limit_s)
    elapsed_s = time.monotonic() - start_mono
    assert not thread.is_alive(), f"engine still running {limit_s:.1f}s after start: a hang"
    assert not failure, f"engine raised {failure[0]!r}"
    return engine, engine.drain(), elapsed_s


def sleep_until(at_monotonic: float) -> None:
    time.sleep(max(0.0, at_monotonic - time.monotonic()))


def kill_then_restart(victim: Target, kill_at_s: float, back_at_s: float
                      ) -> Callable[[float], None]:
    """A ``during`` for run_engine: SIGKILL the target at kill_at_s (a crash), start it
    again at back_at_s on the same ports and CA (returns once TLS verifies)."""
    def during(start: float) -> None:
        sleep_until(start + kill_at_s)
        victim.kill()
        sleep_until(start + back_at_s)
        victim.start()

    return during


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (racy, like every such probe)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile_us(encoded: str, percentile: float) -> int:
    return int(HdrHistogram.decode(encoded).get_value_at_percentile(percentile))


def error_kinds(windows: Windows) -> set[str]:
    """The kinds ("connect", "tls", ...) of every error key in the windows."""
    return {key.split(":")[0] for w in windows for key in w["error"]}


def books_balance(windows: Windows, engine: Engine | None = None,
                  intended: int | None = None) -> dict[str, Any]:
    """Assert the run's accounting holds, per second and in total; return the totals.

    - windows cover every second from 0, each once;
    - at the end of every second, in_flight = sent - completed - failed so far;
    - completed = sum of status = version = address counts = histogram counts (both);
      failed = sum of error counts, and every error key is "<its kind>:<curl code>";
    - the windows add up to the engine's counters (sent, completed, failed, in_flight);
    - late = late_stall + late_cap + late_loop = the sent requests whose send lag (its
      histogram) is over the 1 ms tolerance; the failed histogram counts every failure;
    - every request that fell due was sent or dropped (intended = sent + dropped);
    - intended adds up to the schedule's count when given.
    """
    seconds = [w["second"] for w in windows]
    assert seconds == list(range(len(windows))), f"seconds not 0..n-1 once each: {seconds}"
    sent = completed = failed = 0
    for w in windows:
        sent += w["sent"]
        completed += w["completed"]
        failed += w["failed"]
        where = f"second {w['second']}"
        assert w["in_flight"] == sent - completed - failed, (where, w["in_flight"], sent,
                                                            completed, failed)
        assert w["late"] <= w["sent"], where
        for name in ("status", "version", "address"):
            assert sum(w[name].values()) == w["completed"], (where, name, w[name])
        assert sum(w["error"].values()) == w["failed"], (where, w["error"])
        for key in w["error"]:
            kind, _, code = key.partition(":")
            assert code.isdigit() and error_kind(int(code)) == kind, (where, key)
        for hist in ("latency_corrected_us", "latency_raw_us"):
            assert HdrHistogram.decode(w[hist]).total_count == w["completed"], (where, hist)
        assert HdrHistogram.decode(w["latency_failed_us"]).total_count == w["failed"], where
        assert w["late"] == w["late_stall"] + w["late_cap"] + w["late_loop"], where
        lags = HdrHistogram.decode(w["send_lag_us"])
        if lags.total_count:  # the open model: one lag per sent request
            assert lags.total_count == w["sent"], where
            # Lags are recorded in µs, clamped to >= 1; buckets below 2,048 µs are exact.
            over = lags.total_count - sum(lags.get_count_at_value(v)
                                          for v in range(1, LATE_AFTER_US + 1))
            assert w["late"] == over, (where, w["late"], over)
    totals = total(windows)
    assert (totals["sent"], totals["completed"], totals["failed"]) == (sent, completed, failed)
    assert totals["sent"] == totals["completed"] + totals["failed"] + totals["in_flight"]
    assert totals["intended"] == totals["sent"] + totals["dropped"], totals
    if engine is not None:
        assert (engine.sent, engine.completed, engine.failed, engine.in_flight) == (
            totals["sent"], totals["completed"], totals["failed"], totals["in_flight"]
        ), "windows do not add up to the engine's counters"
    if intended is not None:
        assert totals["intended"] == intended, (totals["intended"], intended)
    return totals
