"""The HTML report: one self-contained file (no fetch), with the summary, the thresholds'
verdicts and every chart; it loads in a real headless Chromium (Debian's) and renders."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

from benchmarks.h2load import ensure_tool
from rafale.analysis import html, store
from rafale.analysis.summary import aggregate_frames
from rafale.analysis.thresholds import evaluate
from rafale.cluster.threshold_syntax import parse_thresholds
from tests.analysis.conftest import SECRET_API_KEY, SECRET_TOKEN, SaveRun
from tests.analysis.windows_factory import RunShape

THRESHOLDS = ("p99<10s", "error_rate<0.01%", "p50[tag=t0]<1s")


@pytest.fixture
def judged(save_run: SaveRun) -> Path:
    """A saved run whose summary holds three thresholds' verdicts (one failing)."""
    path = save_run("judged", RunShape(actors=2, seconds=6, run_id="judged"))
    saved = store.load(path)
    total = aggregate_frames(saved.windows, saved.counts)
    summary = json.loads((path / store.SUMMARY_FILE).read_text())
    summary["thresholds"] = evaluate(parse_thresholds(THRESHOLDS), total)
    (path / store.SUMMARY_FILE).write_text(json.dumps(summary))
    return path


def test_the_report_is_one_file_with_verdicts_and_charts(judged: Path) -> None:
    report = html.write_html(judged)
    text = report.read_text()
    assert report.name == "report.html"
    assert text.count('<tr class="pass">') == 2 and text.count('<tr class="fail">') == 1
    assert "error_rate&lt;0.01%" in text
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', text)
    assert len(images) == 6  # throughput and errors, latency, send lag, connections,
    # addresses, tags
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched
    assert SECRET_TOKEN not in text and SECRET_API_KEY not in text
    assert "<h2>Per tag</h2>" in text and "<h2>Spec (as saved: secrets redacted)</h2>" in text


def test_a_matrix_report_has_the_comparison(save_run: SaveRun, tmp_path: Path) -> None:
    for http in ("1.1", "2"):
        save_run(f"m/{http}", RunShape(actors=1, seconds=3, run_id=f"r{http}"), http=http)
    text = html.write_html(tmp_path / "m").read_text()
    assert "rafale comparison" in text and len(re.findall(r"<img ", text)) == 2


@pytest.mark.slow
def test_the_report_loads_and_renders_in_headless_chromium(judged: Path,
                                                           tmp_path: Path) -> None:
    chromium = ensure_tool("chromium", "chromium")
    report = html.write_html(judged)
    flags = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('<tr class="fail">') == 1 and dom.stdout.count("<img") == 6
    assert "Uncaught" not in dom.stderr and "Failed to load resource" not in dom.stderr
    shot = tmp_path / "shot.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2400",
                           report.as_uri()], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[0] >= 2000 and float(pixels.std()) > 0.05  # not a blank page


def test_rafale_report_html_writes_the_page(judged: Path) -> None:
    from rafale.cluster.cli import main

    assert main(["report", str(judged), "--html"]) == 0
    assert (judged / "report.html").stat().st_size > 50_000  # five inline charts
