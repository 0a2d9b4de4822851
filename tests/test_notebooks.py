"""The notebooks: each .ipynb matches its jupytext source, and runs top to bottom.

Each notebook is kept as a pair, ``notebooks/NAME.py`` (jupytext percent format, the file to
edit) and ``notebooks/NAME.ipynb`` (the same cells, with the outputs of a real run from
``make notebooks``); the pairs must hold the same cells.

The notebooks run on a real kernel (this venv's Python), with short runs, through
``notebooks/execute.py``. Each notebook's first code cell is tagged ``parameters``; its
source is replaced with the short values below before the notebook is executed. Any cell
error fails the test (the notebooks also check their own facts with ``assert``). The
executed notebooks are written next to their outputs in ``tmp_path`` to look at when a test
fails.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jupytext
import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbformat import NotebookNode

from rafale.analysis import store
from rafale.cluster.live import METADATA_KEY
from tests.rayhead import RayHead

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
PAIRING = {"formats": "ipynb,py:percent"}
SYNC_HINT = "run `make notebooks` (or `jupytext --sync notebooks/*.ipynb`) and commit both"
CELL_TIMEOUT_S = 180
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# What committed outputs must not hold: warnings (Python's, tqdm's, Ray's log lines) and
# paths of the machine that ran them.
UNCLEAN = {
    "a Python warning": re.compile(r"\w*Warning: "),
    "tqdm's IProgress notice": re.compile(r"IProgress not found"),
    "a log line": re.compile(r"\b(DEBUG|INFO|WARNING|ERROR)\b.*\.py:\d+ --"),
    "a traceback": re.compile(r"Traceback \(most recent call last\)"),
    "a machine path": re.compile("|".join(re.escape(p) for p in sorted({
        "/work/", "/tmp/", "/root/", "/home/", ".venv/", sys.prefix, str(ROOT)}))),
}


def load_runner() -> ModuleType:
    """notebooks/execute.py (a script, not a package module), which `make notebooks` runs."""
    spec = importlib.util.spec_from_file_location("notebooks_execute", NOTEBOOKS / "execute.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load_runner()


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory, ray_head: RayHead
                 ) -> KernelSpecManager:
    """A ``python3`` kernelspec running this interpreter, so the kernel is the venv's Python
    whatever kernelspecs the user or the system has installed (no install step needed).
    Its runs join the session's `ray start` head (``RAY_ADDRESS``, as a user's notebook
    joins a cluster) instead of each starting a Ray (~12 CPU-seconds a start): the tests
    that start a local Ray are tests/cluster/test_cli.py's end to end and the demo's."""
    env = {name: ray_head.env[name] for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    specs: KernelSpecManager = runner.kernel_specs(
        tmp_path_factory.mktemp("kernels"), env={**env, "RAY_ADDRESS": ray_head.address})
    assert specs.get_kernel_spec(runner.KERNEL).argv[0] == sys.executable
    return specs


def parameter_names(source: str) -> set[str]:
    tree = ast.parse(source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def with_parameters(nb: NotebookNode, values: dict[str, Any]) -> NotebookNode:
    """Replace the source of the cell tagged ``parameters`` with ``values``."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "expected exactly one code cell tagged 'parameters'"
    cell = cells[0]
    assert cell is next(c for c in nb.cells if c.cell_type == "code"), "not the first code cell"
    assert parameter_names(cell.source) == set(values), "the notebook's parameters changed"
    cell.source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    return nb


def execute(name: str, values: dict[str, Any], specs: KernelSpecManager,
            keep: Path) -> NotebookNode:
    """Execute notebooks/<name>.ipynb with the repo root as working directory."""
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = with_parameters(nbformat.read(path, as_version=4), values)
    try:
        runner.execute(nb, ROOT, specs, CELL_TIMEOUT_S)
    finally:
        nbformat.write(nb, keep / path.name)
    return nb


def text_output(nb: NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif "data" in output:
                parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def output_texts(nb: NotebookNode) -> list[tuple[int, str, str]]:
    """(cell index, output kind, text) of every text an output carries (streams, and every
    text/* and JSON representation of displays and results)."""
    texts = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                texts.append((index, f"stream {output.name}", output.text))
            elif output.output_type == "error":
                texts.append((index, "error", "\n".join(output.traceback)))
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    texts.append((index, mime, str(value)))
    return texts


def live_views(nb: NotebookNode) -> list[NotebookNode]:
    """The pictures ``run.live()`` left, in cell order (their metadata says so)."""
    return [output for cell in nb.cells for output in cell.get("outputs", [])
            if METADATA_KEY in output.get("metadata", {})]


def images(nb: NotebookNode) -> int:
    return sum("image/png" in output.get("data", {})
               for cell in nb.cells for output in cell.get("outputs", []))


def cells(nb: NotebookNode) -> list[tuple[str, str, bool]]:
    """What a pair must agree on: each cell's type, source and ``parameters`` tag."""
    return [(cell.cell_type, cell.source, "parameters" in cell.metadata.get("tags", []))
            for cell in nb.cells]


def test_every_notebook_is_found() -> None:
    assert NAMES == ["compare", "protocols_and_dns", "quickstart", "webpush"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_paired_with_its_source(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("jupytext") == PAIRING, (
        f"{name}.ipynb lacks the jupytext pairing metadata {PAIRING}")
    assert (NOTEBOOKS / f"{name}.py").is_file(), f"notebooks/{name}.py is missing"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_matches_its_source(name: str) -> None:
    source = cells(jupytext.read(NOTEBOOKS / f"{name}.py"))
    notebook = cells(jupytext.read(NOTEBOOKS / f"{name}.ipynb"))
    first = next((i for i, (a, b) in enumerate(zip(source, notebook, strict=False)) if a != b),
                 min(len(source), len(notebook)))
    assert source == notebook, (
        f"notebooks/{name}.py ({len(source)} cells) and {name}.ipynb ({len(notebook)} cells) "
        f"differ at cell {first} (from 0): {SYNC_HINT}")


@pytest.mark.parametrize("name", NAMES)
def test_committed_outputs_hold_no_warning_and_no_machine_path(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    found = [f"cell {index} ({kind}): {what}: {match[0]!r}"
             for index, kind, text in output_texts(nb)
             for what, pattern in UNCLEAN.items() if (match := pattern.search(text))]
    stderr = [index for index, kind, _ in output_texts(nb) if kind == "stream stderr"]
    assert not found and not stderr, (
        f"notebooks/{name}.ipynb's committed outputs: {found}, stderr in cells {stderr}; "
        "fix the cause, then run `make notebooks`")


@pytest.mark.slow
def test_quickstart(kernel_specs: KernelSpecManager, tmp_path: Path) -> None:
    out = tmp_path / "quickstart"
    # The notebook ends the run with stop() after the pause and set_rate: DURATION_S only
    # has to outlast its cells. 8 s did not on a loaded machine (CI, 4 test workers on 2
    # cores): the run had ended by the time the pause cell ran, so nothing was paused.
    nb = execute("quickstart", {
        "DURATION_S": 30, "RATE_PER_S": 200, "RAMP_S": 1, "ACTORS": 2, "HTTP": "2",
        "DNS": "pinned", "WATCH_S": 2, "PAUSE_S": 2, "NEW_RATE_PER_S": 300,
        "OUT_DIR": str(out),
    }, kernel_specs, tmp_path)

    assert "0 requests sent in seconds" in text_output(nb)
    assert images(nb) >= 5  # live view twice, throughput, latency, address share
    loaded = store.load(out)
    requests = loaded.summary["requests"]
    # run.live(for_s=WATCH_S), then run.live() after stop(): each left one picture (a
    # display updated in place, once a second), the second drawn after the run had ended.
    watched, ended = live_views(nb)
    for view in (watched, ended):
        assert base64.b64decode(view.data["image/png"]).startswith(PNG_MAGIC)
        assert view.metadata[METADATA_KEY]["run_id"] == loaded.meta["run_id"]
    assert watched.metadata[METADATA_KEY]["updates"] >= 2  # redrawn while the run went
    assert not watched.metadata[METADATA_KEY]["final"]
    assert ended.metadata[METADATA_KEY]["final"]
    status = ended.data["text/plain"]
    assert status.startswith("ended (stopped)"), status
    assert f"completed {requests['completed']:,} · failed {requests['failed']:,}" in status
    assert any(status in text for _, kind, text in output_texts(nb)
               if kind == "text/plain" and text.startswith("Label(")), "the status widget"
    assert requests["completed"] > 0 and requests["failed"] == 0
    assert loaded.meta["ended"] == "stopped" and loaded.meta["label"] == "quickstart"
    assert set(loaded.summary["address_share"]) == {"127.0.0.2", "127.0.0.3"}


@pytest.mark.slow
def test_protocols_and_dns(kernel_specs: KernelSpecManager, tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    nb = execute("protocols_and_dns", {
        "DURATION_S": 1, "RATE_PER_S": 200, "RAMP_S": 0, "ACTORS": "auto",
        "HTTPS_VERSIONS": ["1.1", "3"], "CLEARTEXT_VERSIONS": ["2c"],
        "DNS_MODES": ["system", "pinned"], "OUT_DIR": str(out),
    }, kernel_specs, tmp_path)

    assert "every run used the HTTP version it asked for" in text_output(nb)
    assert images(nb) >= 3  # comparison, address share per DNS mode
    table = pd.read_csv(out / "comparison.csv", dtype={"http": str})
    # HTTP/2 over TLS is the demo's and the engine tests' (three versions keep the story)
    combinations = {(h, d) for h in ("1.1", "3", "2c") for d in ("system", "pinned")}
    assert len(table) == len(combinations)
    assert set(zip(table["http"], table["dns"], strict=True)) == combinations
    assert (table["completed"] > 0).all()
    used = table.groupby("dns")["addresses_used"].agg(["min", "max"])
    assert used.loc["pinned", "min"] == 2 and used.loc["system", "max"] == 1
    assert "| http" in (out / "comparison.md").read_text()


@pytest.mark.slow
def test_webpush(kernel_specs: KernelSpecManager, tmp_path: Path) -> None:
    out = tmp_path / "webpush"
    nb = execute("webpush", {
        "SUBSCRIPTIONS": 600, "GONE_SHARE": 0.02, "THROTTLE_SHARE": 0.05, "RATE_PER_S": 800,
        "RAMP_S": 1, "PAYLOAD": '{"title": "test"}', "OUT_DIR": str(out),
    }, kernel_specs, tmp_path)

    text = text_output(nb)
    assert "every subscription got exactly one delivered message (588)" in text
    assert '-> {"title": "test"}' in text  # a received body decrypted to the payload
    assert images(nb) >= 1  # delivered / gone / retried per second
    gone = (out / "sent" / "gone.jsonl").read_text().splitlines()
    assert len(gone) == 12
    outcomes = store.load_outcomes(out / "sent")
    assert len(outcomes) == 600 and (outcomes["status"].isin([201, 410])).all()


@pytest.mark.slow
def test_compare(kernel_specs: KernelSpecManager, tmp_path: Path) -> None:
    out = tmp_path / "compare"
    nb = execute("compare", {
        "DURATION_S": 2, "RATE_PER_S": 200, "RUNS_A_SIDE": 1, "DELAY_MS": 20, "HTTP": "2",
        "OUT_DIR": str(out),
    }, kernel_specs, tmp_path)

    text = text_output(nb)
    assert "the delay was found as a worse median; errors did not change" in text
    assert "within-run noise only (1 vs 1 runs)" in text  # one run a side: said
    assert images(nb) >= 2  # over time, spectrum
    assert any("background-color: #f4cccc" in output.get("data", {}).get("text/html", "")
               for cell in nb.cells for output in cell.get("outputs", []))  # worse, shaded
    for side in ("before", "after"):
        assert store.repeated_runs(out / side) == [out / side / "1"]
        assert store.load(out / side / "1").meta["label"] == side
