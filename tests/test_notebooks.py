"""The notebooks run top to bottom on a real kernel (this venv's Python), with short runs.

Each notebook's first code cell is tagged ``parameters``; its source is replaced with the
short values below before nbclient executes the notebook. Any cell error fails the test
(the notebooks also check their own facts with ``assert``). The executed notebooks are
written next to their outputs in ``tmp_path`` to look at when a test fails.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode

from analysis import store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "python3"
CELL_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelSpecManager]:
    """A ``python3`` kernelspec running this interpreter, so the kernel is the venv's Python
    whatever kernelspecs the user or the system has installed (no install step needed)."""
    root = tmp_path_factory.mktemp("kernels")
    (root / KERNEL).mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Python 3 (rafale tests)", "language": "python"}
    (root / KERNEL / "kernel.json").write_text(json.dumps(spec))
    yield KernelSpecManager(kernel_dirs=[str(root)])


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
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    assert km.kernel_spec is not None and km.kernel_spec.argv[0] == sys.executable
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, keep / path.name)
        if km.has_kernel:  # a client given a km leaves its kernel (and the kernel's Ray) up
            km.shutdown_kernel(now=False)
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


def images(nb: NotebookNode) -> int:
    return sum("image/png" in output.get("data", {})
               for cell in nb.cells for output in cell.get("outputs", []))


def test_notebooks_are_committed_without_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


def test_quickstart(kernel_specs: KernelSpecManager, tmp_path: Path) -> None:
    out = tmp_path / "quickstart"
    nb = execute("quickstart", {
        "DURATION_S": 8, "RATE_PER_S": 200, "RAMP_S": 1, "ACTORS": 2, "HTTP": "2",
        "DNS": "pinned", "WATCH_S": 2, "PAUSE_S": 2, "NEW_RATE_PER_S": 300,
        "OUT_DIR": str(out),
    }, kernel_specs, tmp_path)

    assert "0 requests sent in seconds" in text_output(nb)
    assert images(nb) >= 4  # live chart, throughput, latency, address share
    loaded = store.load(out)
    requests = loaded.summary["requests"]
    assert requests["completed"] > 0 and requests["failed"] == 0
    assert loaded.meta["ended"] == "stopped" and loaded.meta["label"] == "quickstart"
    assert set(loaded.summary["address_share"]) == {"127.0.0.2", "127.0.0.3"}


def test_protocols_and_dns(kernel_specs: KernelSpecManager, tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    nb = execute("protocols_and_dns", {
        "DURATION_S": 2, "RATE_PER_S": 200, "RAMP_S": 0, "ACTORS": "auto",
        "HTTPS_VERSIONS": ["1.1", "2", "3"], "CLEARTEXT_VERSIONS": ["2c"],
        "DNS_MODES": ["system", "pinned"], "OUT_DIR": str(out),
    }, kernel_specs, tmp_path)

    assert "every run used the HTTP version it asked for" in text_output(nb)
    assert images(nb) >= 3  # comparison, address share per DNS mode
    table = pd.read_csv(out / "comparison.csv", dtype={"http": str})
    combinations = {(h, d) for h in ("1.1", "2", "3", "2c") for d in ("system", "pinned")}
    assert len(table) == len(combinations)
    assert set(zip(table["http"], table["dns"], strict=True)) == combinations
    assert (table["completed"] > 0).all()
    used = table.groupby("dns")["addresses_used"].agg(["min", "max"])
    assert used.loc["pinned", "min"] == 2 and used.loc["system", "max"] == 1
    assert "| http" in (out / "comparison.md").read_text()
