"""A real Prometheus (Debian's ``prometheus``) on loopback for the tests: one job scraping
one address every second, its TSDB in a temp dir, queried over its HTTP API, torn down by
its own process (never by name).

Prometheus applies its scrape targets on a 5 s tick of its scrape manager, so the first
scrape comes ~5-6 s after it starts, whatever the flags: start it before the slow parts
of a test's set-up (a session fixture is set up before Ray), then ``wait_scraping``.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.rayhead import free_port

SCRAPE_INTERVAL_S = 1
# Prometheus applies its scrape targets on a 5 s tick after it is ready (its scrape
# manager's reload interval); each target's first scrape then comes within one interval.
FIRST_SCRAPE_S = 5 + SCRAPE_INTERVAL_S


class Prometheus:
    """``binary`` serving on 127.0.0.1 (a free port), scraping ``scrape_address``
    (``HOST:PORT``) every second in the job ``rafale``; files under ``workdir``."""

    def __init__(self, binary: str, workdir: Path, scrape_address: str) -> None:
        self.scrape_address = scrape_address
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
            f"  scrape_timeout: {SCRAPE_INTERVAL_S}s\n"
            "scrape_configs:\n"
            "  - job_name: rafale\n"
            "    static_configs:\n"
            f"      - targets: [\"{scrape_address}\"]\n")
        self._command = [binary, f"--config.file={config}",
                         f"--storage.tsdb.path={workdir / 'data'}",
                         f"--web.listen-address=127.0.0.1:{self.port}",
                         "--storage.tsdb.retention.time=1h", "--log.level=warn"]
        self._process: subprocess.Popen[bytes] | None = None
        self.ready_at = 0.0  # time.monotonic() when it answered /-/ready

    def __repr__(self) -> str:
        return f"Prometheus({self.url!r}, scraping {self.scrape_address!r})"

    def start(self, timeout_s: float = 30.0) -> Prometheus:
        """Start it and wait for ``/-/ready``; RuntimeError with its log if it does not."""
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(self._command, stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        self.ready_at = time.monotonic()
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus not ready within {timeout_s:g} s:\n"
                           f"{self.log_path.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        """Terminate this process (kill it if it lingers)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- its HTTP API -------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        """``data`` of ``/api/v1/<path>``; RuntimeError naming the query if it failed."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as error:  # a bad query: 400 with the reason
            body = json.load(error)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str, at_s: float) -> list[dict[str, Any]]:
        """An instant query at ``at_s`` (Unix time): ``[{"metric": ..., "value": [t, v]}]``
        for a vector, the raw samples (``"values"``) for a range selector."""
        return list(self.api("query", query=expr, time=f"{at_s:.3f}")["result"])

    def query_range(self, expr: str, start_s: float, end_s: float,
                    step_s: float = 1.0) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=f"{start_s:.3f}",
                             end=f"{end_s:.3f}", step=f"{step_s:g}")["result"])

    def scraped(self) -> bool:
        """Whether the target has been scraped at least once (up or down)."""
        return any(not t["lastScrape"].startswith("0001-")
                   for t in self.api("targets")["activeTargets"])

    def wait_scraping(self, within_s: float) -> float:
        """Wait until the first scrape has happened or is due within ``within_s`` (a run
        started now is placed meanwhile); seconds waited."""
        began = time.monotonic()
        while time.monotonic() < self.ready_at + FIRST_SCRAPE_S - within_s:
            if self.scraped():
                break
            time.sleep(0.1)
        return time.monotonic() - began
