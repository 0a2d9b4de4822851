"""What every ``rafale`` command shares: exit codes, the one way to fail with a message,
warnings on stderr, SIGTERM as Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import warnings
from typing import Any, NoReturn

import typer

from rafale.analysis.redact import redact_text
from rafale.cluster.meta import Ended

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_THRESHOLDS = 99  # a threshold failed (as k6)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.echo(f"rafale: error: {redact_text(message)}", err=True)
    raise typer.Exit(code)


def sigterm_as_interrupt() -> None:
    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, raise_interrupt)


def show_warnings() -> None:
    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        typer.echo(f"rafale: warning: {message}", err=True)

    warnings.showwarning = show


def exit_code(ended: str, thresholds_passed: bool = True) -> int:
    """130 interrupted, 99 a threshold failed, 0 completed or stopped, 1 otherwise."""
    if ended == Ended.INTERRUPTED:
        return EXIT_INTERRUPTED
    if not thresholds_passed:
        return EXIT_THRESHOLDS
    return 0 if ended in (Ended.COMPLETED, Ended.STOPPED) else EXIT_FAILED


def shared_metrics(address: str | None) -> Any:
    """One /metrics endpoint for several runs (matrix, webpush send) at ``address`` (an
    already checked ``HOST:PORT``), or None; exit 2 when it cannot be served (a busy port),
    before any traffic."""
    if address is None:
        return None
    from rafale.cluster.metrics import MetricsEndpoint

    try:
        endpoint = MetricsEndpoint(address, shared=True)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"metrics: {endpoint.url} (Prometheus format)", err=True)
    return endpoint
