"""The ``rafale`` command: ``main.py`` (run, matrix, report, target, doctor, and webpush from
cluster/webpush/cli.py), ``options.py`` (every shared option once: annotation, --help panel,
RunSpec field), ``compare.py`` (rafale compare), ``common.py`` (exit codes, errors,
warnings, signals)."""

from __future__ import annotations

from rafale.cluster.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED
from rafale.cluster.cli.main import app, main

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "app", "main"]
