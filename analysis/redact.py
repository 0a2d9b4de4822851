"""Secrets never reach saved results, logs or the terminal: one place that redacts them.

Header values whose name says they are secret (Authorization, Cookie, anything with key,
token, secret, auth, password, session or signature in its name), the user:password part of
URLs, and the values of URL query parameters (``?token=abc`` -> ``?token=<redacted>``,
unless the run says ``show_query``) are replaced with ``<redacted>``. The spec's repr, the
driver's meta.json, the summary, the progress output and the CLI's error messages all go
through :func:`redact_url` / :func:`redact_text`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

REDACTED = "<redacted>"
_SENSITIVE_EXACT = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SENSITIVE_PARTS = ("key", "token", "secret", "auth", "password", "session", "signature")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def is_sensitive_header(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered in _SENSITIVE_EXACT or any(part in lowered for part in _SENSITIVE_PARTS)


def redact_headers(headers: Any) -> list[Any]:
    """Replace values of sensitive headers with "<redacted>".

    Accepts a mapping, a sequence of (name, value) pairs or of "Name: value" strings, and
    returns a list in the same item shape ([name, value] pairs or "Name: value" strings).
    """
    if headers is None:
        return []
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            name, sep, _ = item.partition(":")
            out.append(f"{name}: {REDACTED}" if sep and is_sensitive_header(name) else item)
        else:
            name, value = item[0], item[1]
            out.append([name, REDACTED if is_sensitive_header(str(name)) else value])
    return out


def _query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        parts.append(f"{name}={REDACTED}" if sep and value else part)
    return "&".join(parts)


def redact_url(url: str, *, show_query: bool = False) -> str:
    """``url`` without user:password and, unless ``show_query``, without query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL.sub(REDACTED, url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query if show_query or not parts.query else _query(parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment).geturl()


def redact_text(text: str, *, show_query: bool = False) -> str:
    """Every URL inside ``text`` (an error message, a note) redacted."""
    return _URL.sub(lambda m: redact_url(m.group(0), show_query=show_query), text)


def _redact(value: Any, show_query: bool) -> Any:
    if isinstance(value, str):
        return redact_text(value, show_query=show_query)
    if isinstance(value, list):
        return [_redact(v, show_query) for v in value]
    if isinstance(value, dict):
        return {k: redact_headers(v) if k == "headers" else _redact(v, show_query)
                for k, v in value.items()}
    return value


def redact_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of meta with header values (any 'headers' key), user:password in URLs and,
    unless its spec says show_query, URL query values redacted."""
    spec = meta.get("spec")
    show_query = bool(spec.get("show_query")) if isinstance(spec, Mapping) else False
    return dict(_redact(copy.deepcopy(dict(meta)), show_query))
