"""The driver's Prometheus endpoint: ``/metrics`` built from the merged windows of every
actor on every host at each scrape (analysis/prometheus.py), so one scrape target covers
the whole cluster.

It binds to loopback unless ``metrics_allow_remote`` is set (as the target's guard does),
before any actor is placed (a bad or busy address is refused before traffic). After the
run it stays up until one scrape has read the final values or ``FINAL_WAIT_S`` have
passed, and says which.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["FINAL_WAIT_S", "MetricsEndpoint", "parse_metrics_address"]

FINAL_WAIT_S = 15.0
FINAL_GRACE_S = 0.5  # from collecting the final values to closing the server


def parse_metrics_address(value: Any, allow_remote: bool) -> str:
    """``"127.0.0.1:9464"``, ``":9464"`` or ``"9464"`` (loopback), ``"[::1]:9464"`` →
    ``"HOST:PORT"``; ValueError names the bad value. Port 0: any free port."""
    text = str(value).strip()
    host, _, port_text = text.rpartition(":") if ":" in text else ("", "", text)
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"metrics {value!r} is not ADDR:PORT; expected e.g. 127.0.0.1:9464 "
                         "or :9464") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"metrics {value!r}: port {port} is not 0..65535")
    if not address.is_loopback and not allow_remote:
        raise ValueError(f"metrics {value!r} is not a loopback address; serving run metrics "
                         "beyond this machine needs metrics_allow_remote "
                         "(--metrics-allow-remote)")
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


class _Source(Collector):
    def __init__(self, endpoint: MetricsEndpoint) -> None:
        self.endpoint = endpoint

    def collect(self) -> list[Metric]:
        return self.endpoint.scrape()


class MetricsEndpoint:
    """``/metrics`` on ``address`` (``HOST:PORT``), from ``build()`` at each scrape."""

    def __init__(self, address: str,
                 build: Callable[[], list[Metric]] = lambda: []) -> None:
        host, _, port = address.rpartition(":")
        self.build = build  # set by the run once it exists
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Source(self))
        try:
            self._server, self._thread = start_http_server(int(port), host.strip("[]"),
                                                           registry)
        except OSError as exc:
            raise ValueError(f"metrics {address!r} cannot be served: {exc.strerror or exc}; "
                             "choose another port (0: any free one)") from None
        self.host = host.strip("[]")
        self.port = int(self._server.server_port)
        self.scrapes = 0
        self._final_at: float | None = None
        self._final_scraped = threading.Event()
        self._stop = threading.Event()
        self._closer: threading.Thread
        self.outcome = ""  # once stopped: whether the final values were scraped

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def scrape(self) -> list[Metric]:
        # Final only if they were final before building: a scrape that began building as
        # the run ended may hold the values of before its end.
        final = self._final_at is not None
        families = self.build()
        self.scrapes += 1
        if final:
            self._final_scraped.set()
        return families

    def final(self, wait_s: float = FINAL_WAIT_S) -> None:
        """The values are final from now on: serve until a scrape has read them or
        ``wait_s`` passed (in a thread of its own), then stop."""
        if self._final_at is None:
            self._final_at = time.monotonic()
            self._closer = threading.Thread(target=self._close, args=(wait_s,), daemon=True,
                                            name="rafale-metrics-close")
            self._closer.start()

    def _close(self, wait_s: float) -> None:
        assert self._final_at is not None
        deadline = self._final_at + wait_s
        while not self._final_scraped.is_set() and not self._stop.is_set():
            if not self._final_scraped.wait(min(0.1, max(0.0, deadline - time.monotonic()))) \
                    and time.monotonic() >= deadline:
                break
        scraped = self._final_scraped.is_set()
        if scraped:
            time.sleep(FINAL_GRACE_S)  # the final scrape was collected: let its answer go out
        self._server.shutdown()
        self._server.server_close()
        waited = time.monotonic() - self._final_at
        self.outcome = (f"final values scraped from {self.url} ({waited:.1f} s after the end)"
                        if scraped else
                        f"final values not scraped from {self.url} within {wait_s:g} s")

    def close(self, wait_s: float = FINAL_WAIT_S) -> str:
        """Wait until the endpoint has stopped (see :meth:`final`); say how it ended."""
        self.final(wait_s)
        self._closer.join()
        return self.outcome

    def stop(self) -> None:
        """Stop now, without waiting for a scrape (its port is needed again)."""
        self.final()
        self._stop.set()
        self._closer.join()
