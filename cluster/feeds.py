"""Feeds on the driver: read a table of requests, check it, normalize it, hand it to Ray.

A feed comes as a file (JSON Lines, CSV or Parquet, by extension or ``feed_format``) or,
from Python, as a pandas DataFrame, a pyarrow Table or a list of dicts. Columns: ``url``
(required), ``method``, ``headers`` (a list of "Name: value" or a JSON object; in CSV, JSON
text), ``body`` (text), ``body_b64`` or ``body_file``, ``tag`` (a short label). Every
problem is refused before any traffic with the row and column it is in.

:func:`load_feed` gives a :class:`Feed` (the normalized ``FEED_SCHEMA`` table and its
tags); :meth:`Feed.plan` cuts it into chunks (put in Ray's object store under Ray) for
the senders. :func:`select_rows` reads an outcomes file and gives back the rows of the
original feed whose outcome is one of ``only`` (re-send just the failed ones).
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rafale.actors.checks import check_url
from rafale.actors.contract import OUTCOME_KINDS, OUTCOMES_SCHEMA, TAG_SEPARATOR
from rafale.actors.feed import CHUNK_ROWS, FEED_MODES, FEED_SCHEMA, NO_TAG, FeedPlan
from rafale.analysis.redact import redact_url

__all__ = ["FEED_FORMATS", "MAX_TAGS", "Feed", "load_feed", "select_rows"]

MAX_TAGS = 32
MAX_TAG_CHARS = 64
FEED_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
                ".parquet": "parquet", ".pq": "parquet"}
COLUMNS = ("url", "method", "headers", "body", "body_b64", "body_file", "tag")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ORIGIN = r"^(?P<origin>[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)"


@dataclass(frozen=True)
class Feed:
    """A checked feed: ``table`` in ``FEED_SCHEMA``, ``tags`` named by the tag column."""

    table: pa.Table = field(repr=False)
    tags: tuple[str, ...]
    source: str
    origins: tuple[str, ...]
    rows_of_source: np.ndarray | None = field(default=None, repr=False, compare=False)
    selection: str = ""  # e.g. "only failed of run/outcomes.parquet"

    def __repr__(self) -> str:
        chosen = f", {self.selection}" if self.selection else ""
        return f"Feed({self.source!r}, {self.rows} rows, {len(self.tags)} tags{chosen})"

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    def plan(self, mode: str, put: Callable[[pa.Table], Any] | None = None) -> FeedPlan:
        """Chunks of ``CHUNK_ROWS`` rows for the senders (``put``: e.g. ``ray.put``)."""
        # One compact copy per chunk at a time (a slice would carry its parent's buffers).
        chunks = (self.table.slice(i, CHUNK_ROWS).combine_chunks()
                  for i in range(0, self.rows, CHUNK_ROWS))
        handed = tuple(put(c) for c in chunks) if put is not None else tuple(chunks)
        return FeedPlan(handed, self.rows, mode, self.tags)

    def source_rows(self, rows: np.ndarray) -> np.ndarray:
        """Row numbers in the source file of these feed rows (they differ after ``only``)."""
        return rows if self.rows_of_source is None else self.rows_of_source[rows]

    def tag_names(self, rows: np.ndarray) -> pa.Array:
        """The tag of each of these rows ("" without), as an Arrow string array."""
        names = pa.array([*self.tags, ""], pa.string())
        index = self.table.column("tag").to_numpy(zero_copy_only=False)[rows]
        return names.take(pa.array(np.where(index < 0, len(self.tags), index)))

    def summary(self, mode: str) -> dict[str, Any]:
        """What meta.json says about the feed (no URLs, headers or bodies)."""
        return {"source": self.source, "rows": self.rows, "mode": mode, "tags": list(self.tags),
                "origins": [redact_url(o) for o in self.origins], "selection": self.selection}


# ----------------------------------------------------------------------------- reading


def _format_of(path: Path, feed_format: str | None) -> str:
    if feed_format is not None:
        if feed_format not in set(FEED_FORMATS.values()):
            raise ValueError(f"feed_format {feed_format!r} is not one of jsonl, csv, parquet")
        return feed_format
    found = FEED_FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValueError(f"feed {str(path)!r}: cannot tell its format from the extension "
                         f"{path.suffix!r}; name it .jsonl, .csv or .parquet or give "
                         "--feed-format jsonl|csv|parquet")
    return found


def _read_file(path: Path, feed_format: str | None) -> pa.Table:
    if not path.is_file():
        raise ValueError(f"feed {str(path)!r} does not exist or is not a file")
    kind = _format_of(path, feed_format)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if kind == "csv":
            import pyarrow.csv as pcsv

            with path.open(newline="") as lines:  # every column is text
                names = next(csv.reader(lines), [])
            types = {name: pa.string() for name in names}
            return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False))
        import pyarrow.json as pjson

        return pjson.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ValueError(f"feed {str(path)!r} cannot be parsed as {kind}: {exc}") from None


def _as_table(feed: Any, feed_format: str | None) -> tuple[pa.Table, str]:
    if isinstance(feed, str | Path):
        path = Path(feed).expanduser()
        return _read_file(path, feed_format), str(path.resolve())
    if isinstance(feed, pa.Table):
        return feed, "<pyarrow.Table>"
    if isinstance(feed, Sequence) and all(isinstance(r, Mapping) for r in feed):
        rows = [dict(r) for r in feed]
        if not rows:
            raise ValueError("feed [] is empty; expected at least one row with a 'url'")
        for row in rows:  # headers as objects would become structs: keep them as JSON text
            if isinstance(row.get("headers"), Mapping | list):
                row["headers"] = json.dumps(row["headers"])
        names = list(dict.fromkeys(k for row in rows for k in row))  # every row's keys
        try:
            return (pa.Table.from_pydict({k: [row.get(k) for row in rows] for k in names}),
                    "<list of dicts>")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"feed <list of dicts> has a column of mixed types: {exc}") from None
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(feed, pd.DataFrame):
        frame = feed.copy()
        if "headers" in frame:
            frame["headers"] = [h if h is None or isinstance(h, str) else json.dumps(
                h if isinstance(h, list) else dict(h)) for h in frame["headers"]]
        return pa.Table.from_pandas(frame, preserve_index=False), "<pandas.DataFrame>"
    raise ValueError(f"feed {type(feed).__name__} is not a feed; expected a file path "
                     "(.jsonl, .csv, .parquet), a pandas DataFrame, a pyarrow Table or a "
                     "list of dicts")


# ----------------------------------------------------------------------------- checking


def _fail(source: str, row: int, column: str, what: str) -> ValueError:
    return ValueError(f"feed {source!r} row {row} column {column!r}: {what}")


def _strings(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    if name not in table.column_names:
        return None
    column = table.column(name)
    if pa.types.is_null(column.type):
        return None
    if not pa.types.is_string(column.type):
        try:
            column = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return column  # lists/structs (headers): handled row by row
    return column


def _check_urls(urls: pa.ChunkedArray, http: str, source: str) -> tuple[str, ...]:
    nulls = pc.is_null(urls)
    if pc.any(nulls).as_py():
        raise _fail(source, int(pc.index(nulls, True).as_py()), "url", "is empty")
    origins = pc.extract_regex(urls, _ORIGIN)
    bad = pc.is_null(origins)
    if pc.any(bad).as_py():
        row = int(pc.index(bad, True).as_py())
        raise _fail(source, row, "url", f"{urls[row].as_py()!r} is not a URL; expected "
                    "e.g. https://example.test/path")
    origin = pc.struct_field(origins, [0])
    distinct = pc.unique(origin).to_pylist()
    for value in distinct:
        try:
            check_url(value + "/", http)
        except ValueError as exc:
            row = int(pc.index(origin, value).as_py())
            raise _fail(source, row, "url", str(exc)) from None
    return tuple(str(v) + "/" for v in distinct)


def _header_lines(value: Any, source: str, row: int) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [value]
    if isinstance(value, Mapping):
        value = [f"{k}: {v}" for k, v in value.items() if v is not None]
    if not isinstance(value, list):
        raise _fail(source, row, "headers", f"{value!r} is not a list of 'Name: value' or "
                    "a JSON object")
    lines = []
    for item in value:
        name, sep, text = str(item).partition(":")
        if not sep:
            raise _fail(source, row, "headers", f"header {item!r} has no colon; expected "
                        "'Name: value'")
        if not _TOKEN.match(name.strip()):
            raise _fail(source, row, "headers", f"header name {name.strip()!r} is not a valid "
                        "HTTP header name")
        if "\r" in text or "\n" in text:
            raise _fail(source, row, "headers", f"header {name.strip()!r} contains a line break")
        lines.append(f"{name.strip()}: {text.strip()}")
    return lines


def _headers(table: pa.Table, source: str) -> pa.Array:
    if "headers" not in table.column_names:
        return pa.nulls(table.num_rows, pa.list_(pa.string()))
    values = table.column("headers").to_pylist()
    return pa.array([None if v is None else _header_lines(v, source, i)
                     for i, v in enumerate(values)], pa.list_(pa.string()))


def _bodies(table: pa.Table, source: str, base: Path | None) -> pa.Array:
    given = {name: _strings(table, name) for name in ("body", "body_b64", "body_file")}
    raw = table.column("body") if "body" in table.column_names else None
    if raw is not None and (pa.types.is_binary(raw.type) or pa.types.is_large_binary(raw.type)):
        given["body"] = raw.cast(pa.binary())  # bytes as they are (e.g. encrypted bodies)
    present = {name: col for name, col in given.items() if col is not None}
    for name, col in present.items():
        if not pa.types.is_string(col.type) and not (name == "body"
                                                     and pa.types.is_binary(col.type)):
            row = int(pc.index(pc.is_valid(col), True).as_py())
            raise _fail(source, row, name, f"is {col.type}, not text; give the body as text, "
                        "body_b64 or body_file")
    if not present:
        return pa.nulls(table.num_rows, pa.binary())
    masks = {name: pc.is_valid(col) for name, col in present.items()}
    if len(present) > 1:
        count = sum(np.asarray(m.to_numpy(zero_copy_only=False), dtype=int)
                    for m in masks.values())
        both = np.flatnonzero(count > 1)
        if both.size:
            row = int(both[0])
            set_here = [n for n, m in masks.items() if m[row].as_py()]
            raise _fail(source, row, " and ".join(set_here), "more than one body is set; "
                        "give body, body_b64 or body_file")
    out: list[bytes | None] = [None] * table.num_rows
    if "body" in present:
        for i, v in enumerate(present["body"].cast(pa.binary()).to_pylist()):
            if v is not None:
                out[i] = v
    if "body_b64" in present:
        for i, v in enumerate(present["body_b64"].to_pylist()):
            if v is not None:
                try:
                    out[i] = base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError):
                    raise _fail(source, i, "body_b64", "is not base64") from None
    if "body_file" in present:
        for i, v in enumerate(present["body_file"].to_pylist()):
            if v is not None:
                path = Path(v).expanduser()
                if not path.is_absolute() and base is not None:
                    path = base / path
                try:
                    out[i] = path.read_bytes()
                except OSError as exc:
                    raise _fail(source, i, "body_file",
                                f"{v!r} cannot be read: {exc.strerror or exc}") from None
    return pa.array(out, pa.binary())


def _methods(table: pa.Table, source: str) -> pa.Array:
    column = _strings(table, "method")
    if column is None:
        return pa.nulls(table.num_rows, pa.string())
    upper = pc.utf8_upper(pc.utf8_trim_whitespace(column))
    for value in pc.unique(upper).to_pylist():
        if value is not None and not value.isalpha():
            row = int(pc.index(upper, value).as_py())
            raise _fail(source, row, "method", f"{value!r} is not an HTTP method, e.g. GET "
                        "or POST")
    return upper


def _tags(table: pa.Table, source: str) -> tuple[pa.Array, tuple[str, ...]]:
    column = _strings(table, "tag")
    if column is None:
        return pa.array(np.full(table.num_rows, NO_TAG, dtype=np.int16)), ()
    encoded = column.combine_chunks().dictionary_encode()
    names = [str(v) for v in encoded.dictionary.to_pylist()]
    if len(names) > MAX_TAGS:
        raise ValueError(f"feed {source!r} column 'tag' has {len(names)} distinct tags; at "
                         f"most {MAX_TAGS} are allowed (e.g. one per push service)")
    for i, name in enumerate(names):
        if not name or len(name) > MAX_TAG_CHARS or TAG_SEPARATOR in name:
            row = int(pc.index(encoded.indices, i).as_py())
            raise _fail(source, row, "tag", f"{name!r} is not a tag; expected 1 to "
                        f"{MAX_TAG_CHARS} characters without {TAG_SEPARATOR!r}")
    indices = pc.fill_null(encoded.indices, NO_TAG).cast(pa.int16())
    return indices, tuple(names)


def load_feed(feed: Any, *, http: str, feed_format: str | None = None) -> Feed:
    """Read, check and normalize a feed; ValueError naming the row and column if bad."""
    if isinstance(feed, Feed):
        return feed
    table, source = _as_table(feed, feed_format)
    if "url" not in table.column_names:
        raise ValueError(f"feed {source!r} has no 'url' column; its columns are "
                         f"{', '.join(table.column_names) or 'none'} (expected url and "
                         f"optionally {', '.join(COLUMNS[1:])})")
    if table.num_rows == 0:
        raise ValueError(f"feed {source!r} is empty; expected at least one row")
    urls = _strings(table, "url")
    assert urls is not None
    origins = _check_urls(urls, http, source)
    base = Path(source).parent if not source.startswith("<") else None
    tags, names = _tags(table, source)
    # Columns stay in their chunks (no copy of the URLs): plan() copies one chunk at a time.
    normalized = pa.Table.from_arrays(
        [urls, _methods(table, source), _headers(table, source),
         _bodies(table, source, base), tags], schema=FEED_SCHEMA)
    return Feed(normalized, names, source, origins)


def check_mode(mode: str) -> str:
    if mode not in FEED_MODES:
        raise ValueError(f"feed_mode {mode!r} is not one of {', '.join(FEED_MODES)}")
    return mode


# ----------------------------------------------------------------------------- only


def select_rows(outcomes_path: str | Path, only: Sequence[str], *, http: str,
                feed_format: str | None = None) -> Feed:
    """The rows of the original feed whose outcome in ``outcomes_path`` is one of ``only``.

    The original feed is the one named in the meta.json beside the outcomes file.
    """
    for kind in only:
        if kind not in OUTCOME_KINDS:
            raise ValueError(f"only {kind!r} is not an outcome; expected some of "
                             f"{', '.join(OUTCOME_KINDS)}")
    path = Path(outcomes_path).expanduser()
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ValueError(f"only needs an outcomes file (outcomes.parquet of a run); "
                         f"{str(path)!r} cannot be read: {exc}") from None
    if not set(OUTCOMES_SCHEMA.names) <= set(schema.names):
        raise ValueError(f"only needs an outcomes file (outcomes.parquet of a run); "
                         f"{str(path)!r} has columns {', '.join(schema.names)}")
    outcomes = pq.read_table(path, columns=["row", "outcome"])
    chosen = pc.is_in(outcomes.column("outcome"), pa.array(list(only)))
    rows = np.sort(outcomes.column("row").filter(chosen).to_numpy())
    meta_path = path.parent / "meta.json"
    try:
        feed_meta = json.loads(meta_path.read_text())["spec"]["feed"]
        source = str(feed_meta["source"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        raise ValueError(f"only: {str(meta_path)!r} does not name the original feed; "
                         "re-send from Python with feed=<the rows>") from None
    if source.startswith("<"):
        raise ValueError(f"only: the original feed was {source} (not a file); select the "
                         "rows in Python and pass them as feed=...")
    original = load_feed(source, http=http, feed_format=feed_format)
    if rows.size == 0:
        raise ValueError(f"only {','.join(only)}: no row of {str(path)!r} has that outcome; "
                         "nothing to send")
    if int(rows[-1]) >= original.rows:
        raise ValueError(f"only: {str(path)!r} names row {int(rows[-1])} but the feed "
                         f"{source!r} has {original.rows} rows (it changed since)")
    source_rows = rows  # outcome rows are rows of the source file
    return Feed(original.table.take(pa.array(rows)), original.tags, source, original.origins,
                source_rows, f"only {','.join(only)} of {path}")
