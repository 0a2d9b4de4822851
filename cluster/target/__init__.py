"""The embedded target: Caddy on loopback (HTTP/1.1, h2, h2c, HTTP/3) with its test routes.

``server.py`` runs it (:class:`Target`, ``rafale target``), ``config.py`` writes its Caddy
configuration, ``push_emulator.py`` answers as a web push service would, and
``access_log.py`` counts what it served from its access log.
"""

from __future__ import annotations

from rafale.cluster.target.config import BIG_BODY_BYTES, PushOptions, TargetOptions
from rafale.cluster.target.server import Target, find_caddy, main_foreground

__all__ = ["BIG_BODY_BYTES", "PushOptions", "Target", "TargetOptions", "find_caddy",
           "main_foreground"]
