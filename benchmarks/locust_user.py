"""The locustfile of the Locust peer (``benchmarks.peers.run_locust``), not imported by rafale.

One ``FastHttpUser`` class: ``GET /`` in a loop with no wait (closed model, one request in
flight per user, one connection per user). TLS is verified against ``RAFALE_CA_FILE`` (the
target's CA) with one SSL context shared by every user: FastHttpUser's default builds one
context per user from the system trust store, ~30 ms of CPU each, which delays 100 users'
first requests by seconds (a start-up cost, not a steady-state one).

Locust has no warm-up option, so this file makes the phases itself: when the test starts it
spawns a greenlet that sleeps ``RAFALE_WARMUP_S``, prints ``WARMED_UP`` (the harness starts its
CPU window on that line, as it does on h2load's "Warm-up phase is over"), reads Locust's own
running totals, sleeps ``RAFALE_DURATION_S``, reads them again, prints one ``REPORT`` line
(JSON: the main phase's requests, failures, wall seconds and this process's own CPU over the
phase) and stops the runner. No per-request hook: the counts are Locust's stats totals.
"""

from __future__ import annotations

import json
import os
import resource
import time
from functools import cache
from typing import Any

import gevent
import gevent.ssl
from locust import FastHttpUser, constant, events, task
from locust.env import Environment

# The same lines as benchmarks.peers.LOCUST_WARMED_UP and LOCUST_REPORT (which cannot import
# this file: importing locust monkey-patches the importing process with gevent).
WARMED_UP = "rafale-locust: warm-up over"
REPORT = "rafale-locust-report: "


@cache
def _context() -> gevent.ssl.SSLContext:
    return gevent.ssl.create_default_context(cafile=os.environ.get("RAFALE_CA_FILE"))


def _shared_context(*_: Any, **__: Any) -> gevent.ssl.SSLContext:
    return _context()


class RootUser(FastHttpUser):
    wait_time = constant(0)
    insecure = False
    ssl_context_factory = _shared_context

    @task
    def root(self) -> None:
        self.client.get("/")


def _totals(environment: Environment) -> tuple[int, int, float, float]:
    """(requests, failures, monotonic s, own CPU s) now; requests include failures."""
    assert environment.runner is not None
    total = environment.runner.stats.total
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (int(total.num_requests), int(total.num_failures), time.monotonic(),
            usage.ru_utime + usage.ru_stime)


def _phases(environment: Environment, warmup_s: float, duration_s: float) -> None:
    gevent.sleep(warmup_s)
    print(WARMED_UP, flush=True)
    start = _totals(environment)
    gevent.sleep(duration_s)
    end = _totals(environment)
    requests, failures = end[0] - start[0], end[1] - start[1]
    report: dict[str, Any] = {
        "requests": requests,
        "failed": failures,
        "succeeded": requests - failures,
        "duration_s": end[2] - start[2],
        "cpu_s_self": end[3] - start[3],
        "requests_before": start[0],
    }
    print(REPORT + json.dumps(report), flush=True)
    assert environment.runner is not None
    environment.runner.quit()


@events.test_start.add_listener
def _start_phases(environment: Environment, **_: Any) -> None:
    warmup_s = float(os.environ.get("RAFALE_WARMUP_S", "1"))
    duration_s = float(os.environ.get("RAFALE_DURATION_S", "5"))
    gevent.spawn(_phases, environment, warmup_s, duration_s)
