# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Did it get slower? Comparing runs
#
# This notebook records two sides against the embedded target, the second with a fixed
# delay added at the target (its `/delay/<ms>` route answers that many milliseconds later),
# and asks `rafale.compare` what changed: per metric, the two values, the change, an
# interval of the difference and a verdict (`better`, `worse`, `no significant change`,
# `not comparable`).
#
# On a shared machine two runs of the same build differ more than the seconds inside one
# run do, so each side is a **series**: `rafale.repeat(N, out=DIR, ...)` runs the same spec N
# times into `DIR/1 .. DIR/N` (as `rafale run --repeat N --out DIR`), and the series'
# directory stands for its runs. With three runs a side the interval resamples the runs,
# then their seconds; with one run a side it covers the noise within a run only, and the
# comparison says so. The same comparison runs from the command line with
# `rafale compare DIR_A DIR_B`.

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
DURATION_S = 10                   # seconds per run
RATE_PER_S = 300                  # req/s per run
RUNS_A_SIDE = 3                   # runs per side (3 or more: the interval covers run noise)
DELAY_MS = 5                      # the delay the second side's target adds
HTTP = "2"                        # HTTP version of both sides
OUT_DIR = "results/compare"

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

import rafale
from rafale.analysis import plots
from rafale.analysis.verdict import WORSE, charts, side_series, text

# %% [markdown]
# ## 1. Two sides: as it was, then with the target slower
#
# One target with its delay route; each side is a series of `RUNS_A_SIDE` runs at the same
# rate, the same protocol and the same origin, so every metric is comparable.

# %%
previous = globals().get("target")
if previous is not None:
    previous.stop()  # re-running this cell replaces the previous target
target = rafale.Target(delay=True).start()
common = {"resolve": target.resolve, "cacert": str(target.ca_file), "http": HTTP,
          "rate_per_s": RATE_PER_S, "duration_s": DURATION_S}
sides = {"before": target.url("/delay/0"), "after": target.url(f"/delay/{DELAY_MS}")}


def say(number: int, result: rafale.RunResult) -> None:
    s = result.summary
    print(f"  run {number}: {s['requests']['completed']:,} completed, "
          f"p50 {s['latency_corrected_us']['p50'] / 1000:.2f} ms")


for name, url in sides.items():
    print(f"{name}: {RUNS_A_SIDE} x {DURATION_S} s at {RATE_PER_S} req/s -> {url}")
    rafale.repeat(RUNS_A_SIDE, out=Path(OUT_DIR) / name, urls=url, label=name,
                  on_run=say, **common)

# %% [markdown]
# ## 2. What changed
#
# `rafale.compare(base, cand)` returns one row per metric. The seed is recorded, so the same
# call gives the same interval; `min_effect` (5 %) keeps a smaller change from ever being
# called `better` or `worse`.

# %%
table = rafale.compare(Path(OUT_DIR) / "before", Path(OUT_DIR) / "after", seed=24)
key = ["rate", "latency.p50", "latency.p90", "latency.p99", "latency.mean", "error_rate",
       "late_rate"]
shown = pd.DataFrame(text.cells(table)).set_index("metric").loc[
    [m for m in key if m in set(table["metric"])], ["base", "cand", "change", "interval",
                                                     "verdict"]]
colours = {"worse": "#f4cccc", "better": "#d9ead3"}


def colour(verdict: str) -> str:
    return f"background-color: {colours.get(verdict.split(':')[0], '')}"


display(shown.style.map(colour, subset=["verdict"]))
display(Markdown("\n".join(f"- {line}" for line in text.notes(table.attrs))))

# %% [markdown]
# ## 3. The charts
#
# Both sides' throughput and latency per second overlaid (a side's runs one after the
# other), then the latency distributions: the percentile spectrum on one log axis, where a
# fixed delay moves the whole curve up.

# %%
before, after = (side_series(Path(OUT_DIR) / name) for name in sides)
plots.show(charts.over_time(before, [after]))
plots.show(charts.spectrum(before, [after]))

# %% [markdown]
# ## 4. What the numbers show
#
# The facts below are computed from the table and checked: the added delay must be found
# as a worse median, and nothing in it adds errors.

# %%
rows = table.set_index("metric")
p50 = rows.loc["latency.p50"]
print(f"median latency {p50['base'] / 1000:.2f} ms -> {p50['cand'] / 1000:.2f} ms "
      f"({text.change(p50.to_dict())}), {p50['verdict']}; the target added {DELAY_MS} ms")
print(f"error rate: {rows.loc['error_rate', 'verdict']}")
print(table.attrs["interval"])
assert p50["verdict"] == WORSE, p50.to_dict()
assert p50["difference"] >= 0.8 * DELAY_MS * 1000  # µs: most of the delay, found
assert rows.loc["error_rate", "verdict"] == "no significant change"
print("the delay was found as a worse median; errors did not change")

# %%
target.stop()
