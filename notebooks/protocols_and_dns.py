# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # HTTP versions × DNS modes
#
# This notebook runs the **matrix**: every HTTP version against both DNS modes, one run after
# the other at the same rate, against the embedded target and its two loopback addresses:
#
# - HTTP/1.1, HTTP/2 and HTTP/3 over https, and h2c (HTTP/2 without TLS) over http;
# - DNS `system`: libcurl resolves the name and keeps using one address;
# - DNS `pinned`: rafale resolves every address and pins each connection to one of them,
#   round-robin, so that all addresses share the load.
#
# Then it compares the runs in a table and charts and reads what they show. The same
# experiment runs from the command line with `rafale matrix` or `make demo`.

# %% [markdown]
# ## Parameters
#
# `RATE_PER_S = None` sends as fast as the in-flight cap allows (the closed model) instead of
# at a fixed rate: use it to compare maximum throughput rather than latency at a given rate.

# %% tags=["parameters"]
DURATION_S = 10                   # seconds per run
RATE_PER_S = 1000                 # req/s per run, or None for as fast as possible
RAMP_S = 1                        # ramp-up seconds (ignored when RATE_PER_S is None)
ACTORS = "auto"                   # sender processes per run, or "auto" (one per CPU)
HTTPS_VERSIONS = ["1.1", "2", "3"]
CLEARTEXT_VERSIONS = ["2c"]
DNS_MODES = ["system", "pinned"]
OUT_DIR = "results/protocols_and_dns"

# %%
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import Markdown, display

import rafale
from rafale.analysis import compare, frames, plots
from rafale.cluster.matrix import plan, run_matrix

# %% [markdown]
# ## 1. The target and the plan
#
# The embedded target listens on 127.0.0.2 and 127.0.0.3 under one name. `plan` builds and
# validates every run first (a bad option fails before any traffic) and skips combinations
# that cannot work (HTTP/2 and HTTP/3 need https, h2c needs http) with a note.

# %%
previous = globals().get("target")
if previous is not None:
    previous.stop()  # re-running this cell replaces the previous target
target = rafale.Target().start()
print(target)

base: dict[str, Any] = {"duration_s": DURATION_S, "resolve": target.resolve,
                        "cacert": str(target.ca_file)}
if RATE_PER_S is not None:
    base.update(rate_per_s=RATE_PER_S, ramp_s=RAMP_S)
cases = []
for url, versions in ((target.https_url, HTTPS_VERSIONS), (target.http_url, CLEARTEXT_VERSIONS)):
    if versions:  # an empty list skips that scheme
        planned, notes = plan(base, [url], versions, DNS_MODES, actors=[ACTORS], out=OUT_DIR)
        cases += planned
        for note in notes:
            print("note:", note)
print(f"{len(cases)} runs of {DURATION_S} s:")
for case in cases:
    print(" ", case.label, case.spec.urls[0])


# %% [markdown]
# ## 2. Run the matrix
#
# Each run is saved in its own folder under `OUT_DIR`; at the end `run_matrix` writes the
# comparison (`comparison.md`, `.csv`, `.png`; `scaling.png` with several actor counts)
# there too. One line per run is printed as it finishes.

# %%
def describe(case: Any, result: Any) -> None:
    s = result.summary
    shares = ", ".join(f"{a} {v:.0%}" for a, v in sorted(s["address_share"].items()))
    print(f"{case.label:<28} {s['rate_per_s']['completed']:9.1f} req/s  "
          f"failed {s['requests']['failed']:<5} addresses: {shares or '-'}", flush=True)


results, written = run_matrix(cases, OUT_DIR, on_run=describe)
for path in written:
    print("wrote", path)

# %% [markdown]
# ## 3. The comparison table
#
# One row per run (`analysis.compare.compare`): achieved requests/s, latency percentiles
# corrected for coordinated omission (from the intended send time) and raw (from the actual
# send), failures, late requests, and how many remote addresses were used.

# %%
table = compare.compare(results)
shown = ["label", "http", "dns", "actors", "sent", "completed", "failed", "late",
         "achieved_per_s", "p50_corrected_us", "p99_corrected_us", "p99_raw_us",
         "addresses_used", "max_address_share"]
display(Markdown(compare.to_markdown(table[shown])))

# %% [markdown]
# ## 4. Charts
#
# Requests/s per HTTP version (bars, one colour per DNS mode) with p50 and p99 latency
# (markers, right axis); then, for one HTTP version, the share of requests per remote
# address with each DNS mode.

# %%
plots.show(plots.comparison(table))

# %%
by_label = {case.label: result for case, result in zip(cases, results, strict=True)}
shown_http = "2" if "2" in table["http"].tolist() else table["http"].iloc[0]
for mode in DNS_MODES:
    for case in cases:
        if case.spec.http == shown_http and case.spec.dns == mode:
            plots.show(plots.address_share(by_label[case.label]))
            break

# %% [markdown]
# ## 5. What the numbers show
#
# The facts behind the reading are computed and checked here, from the results above.

# %%
facts = pd.DataFrame(
    {
        "label": [c.label for c in cases],
        "http": [c.spec.http for c in cases],
        "dns": [c.spec.dns for c in cases],
        "negotiated": [", ".join(sorted(r.summary["version_share"])) for r in results],
        "addresses_used": [len(r.summary["address_share"]) for r in results],
        "completed": [r.summary["requests"]["completed"] for r in results],
        "error_share": [r.summary["error_share"] for r in results],
        "late_share": [frames.run_row(r)["late_share"] for r in results],
    }
)
display(facts)
addresses_by_mode = facts.groupby("dns")["addresses_used"].agg(["min", "max"])
print("addresses used per DNS mode (min, max over runs):")
print(addresses_by_mode.to_string())
print("target addresses:", len(target.addresses))

assert (facts["completed"] > 0).all(), "a run completed no request"
if "pinned" in addresses_by_mode.index:
    assert addresses_by_mode.loc["pinned", "min"] == len(target.addresses)
if "system" in addresses_by_mode.index:
    assert addresses_by_mode.loc["system", "max"] == 1
expected = facts["http"].str.removesuffix("c")  # h2c is HTTP/2 on the wire
assert (facts["negotiated"] == expected).all(), "a run fell back to another HTTP version"
print("every run used the HTTP version it asked for")

# %% [markdown]
# **Reading.**
#
# - **DNS.** With `system`, libcurl resolves `rafale.test` and sends every request to one
#   address; the other one idles. With `pinned`, rafale pins connections to every resolved
#   address in turn, so both addresses share the load. Against a real service whose name
#   resolves to several servers, this is the difference between loading one of them and
#   loading all of them — the point of the original 180,000 req/s experiment.
# - **HTTP versions.** Every run negotiated the version it asked for (checked above), so
#   the rows compare HTTP/1.1, HTTP/2, HTTP/3 and h2c themselves, not a silent fallback.
# - **Rate and latency.** At a fixed rate every run is asked for the same requests, so
#   req/s only differs when a run could not keep up (then `late` and the corrected latency
#   grow); compare the latency columns. Set `RATE_PER_S = None` to compare the highest
#   throughput of each combination instead. On loopback the numbers measure the client and
#   the local server sharing this machine's CPUs, not a network.

# %% [markdown]
# ## 6. From disk
#
# Every run was saved under `OUT_DIR`; `rafale.load` reads one back with pandas only,
# and `analysis.compare.load_all(OUT_DIR)` reads them all (or `rafale report OUT_DIR`).

# %%
reloaded = [rafale.load(case.spec.out) for case in cases]
assert [r.summary["requests"] for r in reloaded] == [r.summary["requests"] for r in results]
print(f"reloaded {len(reloaded)} runs from {OUT_DIR}")
print((Path(OUT_DIR) / compare.COMPARISON_MD).read_text())

# %%
target.stop()
print(target)
