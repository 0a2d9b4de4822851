"""One redaction for URLs, text and meta: user:password and query values never shown."""

from __future__ import annotations

import pytest

from rafale.analysis.redact import redact_meta, redact_text, redact_url


@pytest.mark.parametrize(("url", "hidden", "shown"), [
    ("https://host/?token=abc", "https://host/?token=<redacted>", None),
    ("https://host:8443/p?a=1&b=&c", "https://host:8443/p?a=<redacted>&b=&c", None),
    ("https://user:pw@host/x", "https://<redacted>@host/x", "https://<redacted>@host/x"),
    ("https://u:p@host/x?k=v#frag", "https://<redacted>@host/x?k=<redacted>#frag",
     "https://<redacted>@host/x?k=v#frag"),
    ("http://host/plain", "http://host/plain", "http://host/plain"),
])
def test_redact_url(url: str, hidden: str, shown: str | None) -> None:
    assert redact_url(url) == hidden
    assert redact_url(url, show_query=True) == (shown or url)


def test_redact_text_finds_urls_in_messages() -> None:
    text = "URL 'https://h/?token=abc' has scheme 'https'; also http://u:p@h2/?x=1."
    got = redact_text(text)
    assert "abc" not in got and "u:p" not in got and "token=<redacted>" in got
    assert got.startswith("URL 'https://h/?token=<redacted>' has scheme")


def test_redact_meta_follows_the_specs_show_query() -> None:
    meta = {"spec": {"urls": ["https://h/?t=1"], "headers": [["Authorization", "Bearer x"]]},
            "notes": ["failed on https://h/?t=1"]}
    hidden = redact_meta(meta)
    assert hidden["spec"]["urls"] == ["https://h/?t=<redacted>"]
    assert hidden["notes"] == ["failed on https://h/?t=<redacted>"]
    assert hidden["spec"]["headers"] == [["Authorization", "<redacted>"]]
    shown = redact_meta({**meta, "spec": {**meta["spec"], "show_query": True}})
    assert shown["spec"]["urls"] == ["https://h/?t=1"]
    assert shown["spec"]["headers"] == [["Authorization", "<redacted>"]]
    assert meta["spec"]["urls"] == ["https://h/?t=1"]  # the caller's meta is untouched
