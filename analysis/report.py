"""Re-render charts of a saved result (or a matrix of results) and describe it as text.

`python -m rafale.analysis.report DIR` works on a laptop: it imports only pandas, pyarrow,
matplotlib, numpy and hdrh (never ray or pycurl).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from rafale.analysis import compare, plots, store
from rafale.analysis.latency import percentile_label
from rafale.analysis.result import Result
from rafale.analysis.sender import sender_line

# Summary keys of the latency table, with their row labels (rows without samples are left out).
LATENCY_ROWS = (
    ("latency_corrected_us", "completed, from intended"),
    ("latency_healthy_us", "  healthy seconds only"),
    ("latency_raw_us", "completed, from send"),
    ("latency_all_us", "all finished, from intended"),
    ("latency_failed_us", "failed, from intended"),
    ("send_lag_us", "send lag (sent - intended)"),
    ("ttfb_us", "time to first byte"),
    ("connect_us", "connect (new connections)"),
)

RUN_CHARTS: dict[str, Callable[[Result], Figure]] = {
    "throughput.png": plots.throughput,
    "latency.png": plots.latency,
    "address_share.png": plots.address_share,
}


def is_matrix_dir(directory: str | os.PathLike[str]) -> bool:
    """A directory of results (subdirectories with meta.json), not itself holding windows."""
    path = Path(directory)
    return not (path / store.WINDOWS_FILE).exists() and bool(compare.result_dirs(path))


def render(directory: str | os.PathLike[str]) -> list[Path]:
    """Write the charts of one result (into its directory) or the comparison of a matrix;
    a run that sent a feed with tags also gets tags.png."""
    path = Path(directory)
    if is_matrix_dir(path):
        return compare.write_comparison(path, compare.load_all(path))
    result = store.load(path)
    charts = {**RUN_CHARTS, **({"tags.png": plots.tags} if result.summary.get("tags") else {})}
    return [plots.save_png(chart(result), path / name) for name, chart in charts.items()]


def _ms(value_us: Any) -> str:
    return "-" if value_us is None else f"{value_us / 1000.0:,.3f}"


def _shares(counts: Mapping[str, Any], total: int | None = None,
            stalled: Mapping[str, int] | None = None) -> str:
    """"key count (share)", largest first; with ``stalled``, how many of each ended while
    the sender was stalled."""
    if not counts:
        return "none"
    denominator = total if total else sum(counts.values())
    stalled = stalled or {}
    return ", ".join(
        (f"{key} {count:,} ({count / denominator:.1%})" if denominator else f"{key} {count:,}")
        + (f" ({stalled[key]:,} sender stalled)" if stalled.get(key) else "")
        for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _held(held: float | None) -> str:
    """The rate held after a ramp, beside the means that the ramp pulls down."""
    return "" if held is None else f"; held after the ramp: {held:,.1f} completed/s"


def _versions(asked: str, counts: Mapping[str, Any]) -> str:
    """What was asked (auto: negotiated per connection) and what answered."""
    return f"{asked} (negotiated: {_shares(counts)})" if asked else _shares(counts)


def _table(rows: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(name) for name, _ in rows)
    return [f"  {name.ljust(width)}  {value}" for name, value in rows]


def _target_lines(target: Mapping[str, Any], req: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The target against what was sent (open model), per stage when there are several."""
    if not target or target.get("model") != "open":
        return []
    duration = float(target.get("duration_s") or 0) or 1.0
    line = (f"{target['rate_per_s']:,.1f} req/s, {target['scheduled']:,} requests scheduled "
            f"in {duration:g} s; sent {target['sent']:,} ({target['ratio']:.1%})")
    rows = [("target", line)]
    if not target.get("reached"):
        rows.append(("", f"target not reached: achieved {target['sent'] / duration:,.1f} of "
                         f"{target['scheduled'] / duration:,.1f} req/s; "
                         f"{req.get('late', 0):,} late, {req.get('dropped', 0):,} dropped"))
    stages = target.get("stages") or []
    for i, stage in enumerate(stages if len(stages) > 1 else []):
        got = stage.get("sent_per_s")
        shown = "-" if got is None else f"{got:,.1f} ({stage['ratio']:.1%})"
        rows.append((f"  stage {i + 1}", f"{stage['start_s']:g}-{stage['end_s']:g} s: target "
                     f"{stage['target_per_s']:,.1f} req/s, sent {shown}"))
    return rows


def _feed_lines(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The feed, its rows' outcomes (sent once) and one line per tag."""
    feed = summary.get("feed") or {}
    rows: list[tuple[str, str]] = []
    if feed:
        chosen = f", {feed['selection']}" if feed.get("selection") else ""
        rows.append(("feed", f"{feed.get('rows', 0):,} rows, {feed.get('mode')}{chosen}"))
        outcomes = {k: v for k, v in (feed.get("outcomes") or {}).items() if v}
        if outcomes:
            rows.append(("row outcomes", _shares(outcomes, int(feed.get("rows") or 0))))
    push = summary.get("webpush") or {}
    if push:
        classes = {k.replace("_", " "): v for k, v in push.get("outcomes", {}).items() if v}
        rows.append(("web push", _shares(classes, int(feed.get("rows") or 0) or None)))
        rows.append(("gone", f"{push.get('gone', 0):,} subscriptions to delete: "
                             f"{push.get('gone_file', '')}"))
    for status, body in (summary.get("answers") or {}).items():
        rows.append((f"answer {status}", " ".join(str(body).split())[:200]))
    for tag, entry in (summary.get("tags") or {}).items():
        latency = entry.get("latency_corrected_us") or {}
        rows.append((f"tag {tag}", f"{entry['finished']:,} finished, {entry['failed']:,} "
                     f"failed; p50 {_ms(latency.get('p50'))} p99 {_ms(latency.get('p99'))} ms; "
                     f"statuses: {_shares(entry['status'])}"
                     + (f"; errors: {_shares(entry['errors'])}" if entry["errors"] else "")))
    return rows


def loss_text(lost: dict[str, Any]) -> str:
    """One lost actor in a line: who, when, how it was detected, the takeover and the gap."""
    where = lost.get("hostname") or lost.get("ip") or str(lost.get("node", ""))[:12]
    text = (f"actor {lost.get('actor')} on {where}"
            + (f" ({lost['ip']})" if lost.get("ip") and lost.get("hostname") else "")
            + f" at {float(lost.get('at_s', 0)):.1f} s: {lost.get('reason', '?')}")
    if lost.get("takeover_at_s") is not None:
        text += f"; the others took over at {float(lost['takeover_at_s']):.1f} s"
    gap = lost.get("gap") or {}
    if gap.get("requests"):
        done = "sent late by the others" if gap.get("mode") == "catch-up" else "not sent (skip)"
        text += (f"; {gap['requests']:,} requests of its stripe due from "
                 f"{float(gap.get('from_s', 0)):.1f} s {done}")
    if lost.get("came_back_at_s") is not None:
        text += f"; answered again at {float(lost['came_back_at_s']):.1f} s (stopped, kept)"
    return text


def summary_text(result: Result) -> str:
    """A compact, human-readable summary of one run."""
    s = result.summary
    req = s.get("requests", {})
    rate = s.get("rate_per_s", {})
    lines = [f"rafale run {plots.run_title(result)}", *sender_line(s.get("sender"))]
    if s.get("recomputed"):
        lines.append("  (summary recomputed: the result directory was incomplete)")
    ended = result.meta.get("ended") or result.meta.get("end_reason")
    lost = [("lost", loss_text(x)) for x in result.meta.get("lost") or ()]
    lines += _table([
        ("duration", f"{s.get('duration_s', 0)} s, {s.get('actors', 0)} actors on "
                     f"{s.get('nodes', 0)} node(s)" + (f", ended: {ended}" if ended else "")),
        ("requests", f"intended {req.get('intended', 0):,}  sent {req.get('sent', 0):,}  "
                     f"completed {req.get('completed', 0):,}  failed {req.get('failed', 0):,}  "
                     f"in flight at the end {req.get('in_flight_end', 0):,}"),
        ("timing", f"late {req.get('late', 0):,} (sender stalled "
                   f"{req.get('late_stall', 0):,}, in-flight cap {req.get('late_cap', 0):,}, "
                   + (f"connect budget {req['late_connect']:,}, " if req.get("late_connect")
                      else "") +
                   f"loop {req.get('late_loop', 0):,}; after "
                   f"{1000 * float(result.meta.get('late_after_s') or 0.001):g} ms)  "
                   f"dropped {req.get('dropped', 0):,}"),
        *_target_lines(s.get("target") or {}, req),
        ("req/s (mean)", f"due {rate.get('intended', 0):,.1f}  sent {rate.get('sent', 0):,.1f}"
                         f"  completed {rate.get('completed', 0):,.1f}"
                         + _held((s.get("target") or {}).get("held_per_s"))),
        ("errors", f"{s.get('error_share', 0):.2%} of sent (failed, or open at the end); by "
                   "kind: " + _shares(s.get("error_kinds", {}))),
        ("error codes", _shares(s.get("errors", {}), stalled=s.get("errors_stalled"))),
        ("statuses", _shares(s.get("status", {}))),
        ("addresses", _shares(s.get("address", {}))),
        ("HTTP versions", _versions(str(result.meta.get("http") or ""), s.get("version", {}))),
        ("connections", f"{s.get('new_connections', 0):,} opened; CPU {s.get('cpu_s', 0):,.2f} s"),
        *_feed_lines(s),
    ] + lost
      + [("warning", str(w)) for w in result.meta.get("warnings") or ()])
    header = ["latency (ms)", "p50", "p90", "p99", "p99.9", "max", "mean"]
    rows = [header]
    for key, label in LATENCY_ROWS:
        lat = s.get(key) or {}
        if not lat.get("count"):
            continue
        rows.append([label, *(_ms(lat.get(f"{percentile_label(p)}")) for p in
                              (50, 90, 99, 99.9)), _ms(lat.get("max")), _ms(lat.get("mean"))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines.append("")
    for r in rows:
        lines.append("  " + "  ".join(
            c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    lines += _threshold_lines(s.get("thresholds") or [])
    return "\n".join(lines) + "\n"


def _threshold_value(result: Mapping[str, Any]) -> str:
    value = result.get("value")
    if value is None:
        return "no samples"
    metric = str(result.get("metric", ""))
    if "." in metric:
        return f"{value / 1000.0:,.3f} ms"
    if metric == "dropped":
        return f"{value:,.0f}"
    if metric == "sender_stall_s":
        return f"{value / 1e6:,.2f} s"
    return f"{value:.2%}"


def _threshold_lines(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per threshold: pass/FAIL, the expression, the value (and windows)."""
    if not results:
        return []
    failed = sum(not r["passed"] for r in results)
    lines = ["", f"thresholds: {len(results) - failed} passed, {failed} failed"]
    for r in results:
        mark = "pass" if r["passed"] else "FAIL"
        windows = ""
        if r.get("window_s"):
            windows = (f"; {r['failed_windows']} failing {r['window_s']} s windows"
                       + (f", first at {r['first_failed_window_s']} s"
                          if r.get("first_failed_window_s") is not None else ""))
        lines.append(f"  {mark}  {r['threshold']}  (whole run: {_threshold_value(r)}"
                     f"{windows})")
    return lines


def text(directory: str | os.PathLike[str]) -> str:
    """summary_text of a result, or the markdown comparison table of a matrix directory."""
    path = Path(directory)
    if is_matrix_dir(path):
        return compare.to_markdown(compare.compare(compare.load_all(path)))
    return summary_text(store.load(path))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m rafale.analysis.report RESULT_DIR|MATRIX_DIR", file=sys.stderr)
        return 2
    try:
        written = render(args[0])
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(text(args[0]), end="")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
