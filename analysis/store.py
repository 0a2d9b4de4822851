"""Results on disk: windows.parquet, counts.parquet, meta.json, summary.json; redaction.

During a run the driver checkpoints append-only: each checkpoint writes the windows drained
since the previous one as one more part under ``windows/`` and ``counts/`` (its cost does
not grow with the run), then meta.json and summary.json. At the end the parts are compacted
into windows.parquet and counts.parquet and removed. Every file is written atomically
(a temporary file in the same directory, then os.replace), so a run killed at any point
leaves a directory that :func:`load` reads, up to the last checkpoint. Imports pandas,
pyarrow and the analysis package only (never ray or pycurl).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rafale.actors.contract import COUNTS_SCHEMA, OUTCOMES_SCHEMA, WINDOWS_SCHEMA
from rafale.analysis.log import WindowLog
from rafale.analysis.redact import redact_meta
from rafale.analysis.result import Result
from rafale.analysis.summary import summarize, summarize_frames

WINDOWS_FILE = "windows.parquet"
COUNTS_FILE = "counts.parquet"
WINDOWS_PARTS = "windows"
COUNTS_PARTS = "counts"
OUTCOMES_FILE = "outcomes.parquet"
OUTCOMES_PARTS = "outcomes"
META_FILE = "meta.json"
SUMMARY_FILE = "summary.json"
REPEAT_FILE = "repeat.json"  # the runs of `rafale run --repeat N` (DIR/1 .. DIR/N)
_PART = "part-{:06d}.parquet"
_SORT = [("second", "ascending"), ("actor", "ascending")]


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


def _write_parquet(path: Path, table: pa.Table) -> None:
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomically write ``data`` as indented JSON (NaN and infinities as null)."""
    text = json.dumps(_clean_json(dict(data)), indent=2, sort_keys=True, default=_json_default)

    def write(tmp: Path) -> None:
        tmp.write_text(text + "\n", encoding="utf-8")

    _atomic_write(path, write)


class Checkpoints:
    """Append-only checkpoints of one run into ``directory`` (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory)
        self.parts = 0
        # meta as last written: a run's meta rarely changes between checkpoints, and with
        # thousands of actors serializing it took ~20 ms a time (benchmarks/driver_tree.py)
        self._meta: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Checkpoints({str(self.path)!r}, parts={self.parts})"

    def append(self, windows: pa.Table, counts: pa.Table, meta: Mapping[str, Any],
               summary: Mapping[str, Any], outcomes: pa.Table | None = None) -> None:
        """Write the windows, counts (and feed outcomes) since the last checkpoint, then
        meta and summary."""
        if windows.num_rows or counts.num_rows or (outcomes is not None and outcomes.num_rows):
            self.parts += 1
            name = _PART.format(self.parts)
            tables = [(OUTCOMES_PARTS, outcomes)] if outcomes is not None else []
            for sub, table in [*tables, (COUNTS_PARTS, counts), (WINDOWS_PARTS, windows)]:
                (self.path / sub).mkdir(parents=True, exist_ok=True)
                _write_parquet(self.path / sub / name, table)
        if meta != self._meta:
            write_json(self.path / META_FILE, redact_meta(meta))
            self._meta = copy.deepcopy(meta)
        write_json(self.path / SUMMARY_FILE, summary)

    def finish(self, windows: pa.Table, counts: pa.Table, meta: Mapping[str, Any],
               summary: Mapping[str, Any], outcomes: pa.Table | None = None) -> Path:
        """Write the whole run as windows.parquet and counts.parquet (and outcomes.parquet),
        drop the parts."""
        if outcomes is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            _write_parquet(self.path / OUTCOMES_FILE, outcomes)
        write_tables(self.path, windows, counts, meta, summary)
        for sub in (WINDOWS_PARTS, COUNTS_PARTS, OUTCOMES_PARTS):
            shutil.rmtree(self.path / sub, ignore_errors=True)
        return self.path


def write_tables(directory: str | os.PathLike[str], windows: pa.Table, counts: pa.Table,
                 meta: Mapping[str, Any], summary: Mapping[str, Any]) -> Path:
    """Write a result directory: counts, windows (sorted by second, actor), meta
    (redacted), then summary.json last."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    _write_parquet(path / COUNTS_FILE, counts.sort_by(_SORT) if counts.num_rows else counts)
    _write_parquet(path / WINDOWS_FILE, windows.sort_by(_SORT) if windows.num_rows else windows)
    write_json(path / META_FILE, redact_meta(meta))
    write_json(path / SUMMARY_FILE, summary)
    return path


def save(directory: str | os.PathLike[str],
         windows: WindowLog | Iterable[Mapping[str, Any]], meta: Mapping[str, Any]) -> Path:
    """Write a whole result from a window log, or from window dicts of the contract."""
    log = windows if isinstance(windows, WindowLog) else WindowLog.of(windows)
    windows_table, counts_table = log.tables()
    return write_tables(directory, windows_table, counts_table, meta, summarize(log.total()))


def write_repeat(directory: str | os.PathLike[str],
                 run_dirs: Sequence[str | os.PathLike[str]]) -> Path:
    """Atomically write ``directory``/repeat.json listing the runs of a series (relative
    to ``directory`` when inside it, so the series can be moved), in the order they ran."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    runs = []
    for run in map(Path, run_dirs):
        try:
            runs.append(str(run.relative_to(path)))
        except ValueError:
            runs.append(str(run.resolve()))
    write_json(path / REPEAT_FILE, {"runs": runs})
    return path / REPEAT_FILE


def repeated_runs(directory: str | os.PathLike[str]) -> list[Path] | None:
    """The run directories a series' repeat.json lists, in order; None when ``directory``
    holds no repeat.json (it is one run, or not a result at all). ValueError for a
    repeat.json that does not list runs."""
    path = Path(directory)
    listing = path / REPEAT_FILE
    if not listing.is_file():
        return None
    runs = (_read_json(listing) or {}).get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, str) and r for r in runs):
        raise ValueError(f"{listing} does not list runs: expected {{\"runs\": [\"1\", "
                         "\"2\", ...]}, as `rafale run --repeat N` writes it")
    return [path / run for run in runs]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_table(path: Path, parts: Path, schema: pa.Schema) -> pa.Table | None:
    """The compacted file, else the checkpoint parts, else None; missing columns filled."""
    for source in (path, parts):
        if not source.exists():
            continue
        try:
            table = pq.read_table(source)
        except (OSError, pa.ArrowException):
            continue
        for f in schema:  # a result saved before a field existed: 0 or "" (empty)
            if f.name not in table.column_names:
                fill: Any = ("" if pa.types.is_string(f.type) else
                             [] if pa.types.is_map(f.type) else 0)
                table = table.append_column(f, pa.array([fill] * table.num_rows, f.type))
        return table.sort_by(_SORT) if table.num_rows else table
    return None


def load_outcomes(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """The outcome of every feed row of a run that sent a feed once (outcomes.parquet, or
    the rows checkpointed so far by a run that did not finish), sorted by row."""
    path = Path(directory)
    for source in (path / OUTCOMES_FILE, path / OUTCOMES_PARTS):
        if source.exists():
            table = pq.read_table(source, schema=OUTCOMES_SCHEMA)
            return table.sort_by("row").to_pandas()
    raise FileNotFoundError(f"{path} has no {OUTCOMES_FILE}: only runs that send a feed "
                            "once (feed_mode 'once') record outcomes")


def load(directory: str | os.PathLike[str]) -> Result:
    """Load a result directory, recomputing what an interrupted run did not write.

    Reads windows.parquet and counts.parquet, or the checkpoint parts a run killed before
    its end left; missing counts give an empty counts frame; a missing, unreadable or
    stale summary.json (its window count differs) is recomputed; missing meta is {}.
    """
    path = Path(directory)
    names = (WINDOWS_FILE, WINDOWS_PARTS, COUNTS_FILE, META_FILE, SUMMARY_FILE)
    if not any((path / n).exists() for n in names):
        raise FileNotFoundError(
            f"{path} is not a rafale result directory: none of {', '.join(names)} found"
        )
    windows = _read_table(path / WINDOWS_FILE, path / WINDOWS_PARTS, WINDOWS_SCHEMA)
    counts = _read_table(path / COUNTS_FILE, path / COUNTS_PARTS, COUNTS_SCHEMA)
    have_windows = windows is not None
    windows_df = (windows if windows is not None else WINDOWS_SCHEMA.empty_table()).to_pandas()
    counts_df = (counts if counts is not None else COUNTS_SCHEMA.empty_table()).to_pandas()
    meta = _read_json(path / META_FILE) or {}
    summary = _read_json(path / SUMMARY_FILE)
    if summary is None or (have_windows and summary.get("windows") != len(windows_df)):
        summary = _clean_json(summarize_frames(windows_df, counts_df))
        summary["recomputed"] = True
    return Result(windows=windows_df, counts=counts_df, meta=meta, summary=summary, path=path)
