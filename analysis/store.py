"""Results on disk: windows.parquet, counts.parquet, meta.json, summary.json.

Every file is written atomically (temporary file in the same directory, then os.replace), so
the driver can call `save` again and again during a run as a checkpoint. `load` copes with a
directory that a crash left half written. Imports only pandas, pyarrow, numpy and hdrh.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import frames

WINDOWS_FILE = "windows.parquet"
COUNTS_FILE = "counts.parquet"
META_FILE = "meta.json"
SUMMARY_FILE = "summary.json"
REDACTED = "<redacted>"

WINDOWS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("actor", pa.int64()),
        ("node", pa.string()),
        ("second", pa.int64()),
        ("intended", pa.int64()),
        ("sent", pa.int64()),
        ("completed", pa.int64()),
        ("failed", pa.int64()),
        ("late", pa.int64()),
        ("in_flight", pa.int64()),
        ("bytes_in", pa.int64()),
        ("new_connections", pa.int64()),
        ("cpu_s", pa.float64()),
        ("loops", pa.int64()),
        ("latency_corrected_us", pa.string()),
        ("latency_raw_us", pa.string()),
    ]
)
COUNTS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("actor", pa.int64()),
        ("second", pa.int64()),
        ("dimension", pa.string()),
        ("key", pa.string()),
        ("count", pa.int64()),
    ]
)
_SENSITIVE_EXACT = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SENSITIVE_PARTS = ("key", "token", "secret", "auth", "password", "session", "signature")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class Result:
    """One saved run: per actor × second windows, long-form counts, meta and summary."""

    windows: pd.DataFrame
    counts: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __repr__(self) -> str:
        run_id = self.summary.get("run_id") or self.meta.get("run_id") or "?"
        return (
            f"Result(run_id={run_id!r}, windows={len(self.windows)}, "
            f"counts={len(self.counts)}, path={str(self.path) if self.path else None!r})"
        )


# --------------------------------------------------------------------------- redaction


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


def _redact_urls(value: Any) -> Any:
    if isinstance(value, str):
        return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)
    if isinstance(value, list):
        return [_redact_urls(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_urls(v) for k, v in value.items()}
    return value


def _redact_nested_headers(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: redact_headers(v) if k == "headers" else _redact_nested_headers(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_nested_headers(v) for v in value]
    return value


def redact_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of meta with header values (meta['spec']['headers'] and any nested 'headers')
    and user:password in URLs redacted."""
    cleaned = _redact_nested_headers(copy.deepcopy(dict(meta)))
    return dict(_redact_urls(cleaned))


# --------------------------------------------------------------------------- frames


def _histogram_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("ascii")
    return str(value)


def _empty_frame(schema: pa.Schema) -> pd.DataFrame:
    return schema.empty_table().to_pandas()


def windows_to_frames(windows: Iterable[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Window dicts (CONTRACTS.md) -> (windows_df, counts_df), sorted by second, actor.

    Histograms are stored as their encoded text; status/error/address/version maps go to the
    long-form counts frame. run_id and node default to "" when the driver did not add them.
    """
    rows: list[dict[str, Any]] = []
    counts: list[tuple[str, int, int, str, str, int]] = []
    for window in windows:
        run_id = str(window.get("run_id") or "")
        actor, second = int(window["actor"]), int(window["second"])
        row: dict[str, Any] = {
            "run_id": run_id,
            "actor": actor,
            "node": str(window.get("node") or ""),
            "second": second,
        }
        for name in frames.COUNTER_COLUMNS:
            value = window.get(name, 0) or 0
            row[name] = float(value) if name == "cpu_s" else int(value)
        for name in frames.LATENCY_COLUMNS:
            row[name] = _histogram_text(window.get(name))
        rows.append(row)
        for dimension in frames.DIMENSIONS:
            for key, count in (window.get(dimension) or {}).items():
                counts.append((run_id, actor, second, dimension, str(key), int(count)))
    if rows:
        table = pa.Table.from_pylist(rows, schema=WINDOWS_SCHEMA)
        windows_df = table.to_pandas().sort_values(["second", "actor"], kind="stable")
        windows_df = windows_df.reset_index(drop=True)
    else:
        windows_df = _empty_frame(WINDOWS_SCHEMA)
    if counts:
        columns = list(zip(*counts, strict=True))
        table = pa.Table.from_arrays([pa.array(c) for c in columns], schema=COUNTS_SCHEMA)
        counts_df = table.to_pandas()
    else:
        counts_df = _empty_frame(COUNTS_SCHEMA)
    return windows_df, counts_df


# --------------------------------------------------------------------------- summary


def _mean_rate(total: float, duration_s: int) -> float:
    return float(total) / duration_s if duration_s else 0.0


def _sending_span_s(windows_df: pd.DataFrame) -> int:
    """Seconds from the first to the last second in which requests were due or sent.

    Rates are over this span: the seconds after it only let in-flight requests finish."""
    busy = windows_df.loc[(windows_df["sent"] > 0) | (windows_df["intended"] > 0), "second"]
    return 0 if busy.empty else int(busy.max() - busy.min() + 1)


def summarize(windows_df: pd.DataFrame, counts_df: pd.DataFrame) -> dict[str, Any]:
    """Totals, mean rates, merged-histogram latency percentiles (µs) and per-key tables."""
    source = (windows_df, counts_df)
    empty = windows_df.empty
    span_s = 0 if empty else int(windows_df["second"].max() - windows_df["second"].min() + 1)
    duration_s = _sending_span_s(windows_df) or span_s
    totals = {
        name: (float(windows_df[name].sum()) if name == "cpu_s" else int(windows_df[name].sum()))
        for name in frames.COUNTER_COLUMNS
        if name != "in_flight"
    }
    requests = {k: totals[k] for k in ("intended", "sent", "completed", "failed", "late")}
    settled = requests["completed"] + requests["failed"]

    def table(dimension: str, column: str) -> dict[str, Any]:
        frame = frames.per_key(source, dimension)
        cast = int if column == "count" else float
        return {str(k): cast(v) for k, v in zip(frame["key"], frame[column], strict=True)}

    run_ids = [] if empty else sorted({str(r) for r in windows_df["run_id"] if r})
    return {
        "run_id": run_ids[0] if len(run_ids) == 1 else ",".join(run_ids),
        "windows": len(windows_df),
        "actors": 0 if empty else int(windows_df["actor"].nunique()),
        "nodes": 0 if empty else int(windows_df["node"].nunique()),
        "first_second": None if empty else int(windows_df["second"].min()),
        "duration_s": duration_s,
        "span_s": span_s,
        "requests": requests,
        "bytes_in": totals["bytes_in"],
        "new_connections": totals["new_connections"],
        "cpu_s": totals["cpu_s"],
        "loops": totals["loops"],
        "rate_per_s": {
            k: _mean_rate(requests[k], duration_s) for k in ("intended", "sent", "completed")
        },
        "error_share": requests["failed"] / settled if settled else 0.0,
        "latency_corrected_us": frames.latency_summary(windows_df["latency_corrected_us"]),
        "latency_raw_us": frames.latency_summary(windows_df["latency_raw_us"]),
        "error_kinds": frames.error_kinds(source),
        "errors": table("error", "count"),
        "status": table("status", "count"),
        "address": table("address", "count"),
        "address_share": table("address", "share"),
        "version": table("version", "count"),
        "version_share": table("version", "share"),
    }


# --------------------------------------------------------------------------- files


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def _clean_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(_clean_json(dict(data)), indent=2, sort_keys=True, default=_json_default)
    def write(tmp: Path) -> None:
        tmp.write_text(text + "\n", encoding="utf-8")

    _atomic_write(path, write)


def _write_parquet(path: Path, frame: pd.DataFrame, schema: pa.Schema) -> None:
    extra = [c for c in frame.columns if c not in schema.names]
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    for name in extra:
        table = table.append_column(name, pa.array(frame[name]))
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def save(
    directory: str | os.PathLike[str],
    windows: Iterable[Mapping[str, Any]],
    meta: Mapping[str, Any],
    *,
    with_summary: bool = True,
) -> Path:
    """Write (or overwrite, as a checkpoint) a result directory and return its path.

    Order: counts, windows, meta (redacted), summary — summary.json last, so its presence
    means the rest is complete; `load` recomputes it when absent or stale. Summarizing decodes
    every histogram (~0.25 ms each): long runs can checkpoint with with_summary=False (any
    previous summary.json is removed) and write it once at the end.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    windows_df, counts_df = windows_to_frames(windows)
    _write_parquet(path / COUNTS_FILE, counts_df, COUNTS_SCHEMA)
    _write_parquet(path / WINDOWS_FILE, windows_df, WINDOWS_SCHEMA)
    _write_json(path / META_FILE, redact_meta(meta))
    if with_summary:
        _write_json(path / SUMMARY_FILE, summarize(windows_df, counts_df))
    else:
        (path / SUMMARY_FILE).unlink(missing_ok=True)
    return path


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_parquet(path: Path, schema: pa.Schema) -> pd.DataFrame | None:
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException):
        return None
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        defaults = _empty_frame(schema)
        for name in missing:
            frame[name] = pd.Series([None] * len(frame), dtype=defaults[name].dtype)
    return frame


def is_result_dir(directory: str | os.PathLike[str]) -> bool:
    path = Path(directory)
    return path.is_dir() and any((path / n).exists() for n in (META_FILE, WINDOWS_FILE))


def load(directory: str | os.PathLike[str]) -> Result:
    """Load a result directory, recomputing what an interrupted run did not write.

    Missing or unreadable counts.parquet gives an empty counts frame; a missing, unreadable or
    stale summary.json (window count differs) is recomputed from the frames; missing meta is {}.
    """
    path = Path(directory)
    names = (WINDOWS_FILE, COUNTS_FILE, META_FILE, SUMMARY_FILE)
    if not any((path / n).exists() for n in names):
        raise FileNotFoundError(
            f"{path} is not a rafale result directory: none of {', '.join(names)} found"
        )
    windows_df = _read_parquet(path / WINDOWS_FILE, WINDOWS_SCHEMA)
    have_windows = windows_df is not None
    if windows_df is None:
        windows_df = _empty_frame(WINDOWS_SCHEMA)
    counts_df = _read_parquet(path / COUNTS_FILE, COUNTS_SCHEMA)
    if counts_df is None:
        counts_df = frames.empty_counts()
    meta = _read_json(path / META_FILE) or {}
    summary = _read_json(path / SUMMARY_FILE)
    if summary is None or (have_windows and summary.get("windows") != len(windows_df)):
        summary = _clean_json(summarize(windows_df, counts_df))
        summary["recomputed"] = True
    return Result(windows=windows_df, counts=counts_df, meta=meta, summary=summary, path=path)
