"""Execute notebooks in place, outputs kept: ``python notebooks/execute.py [NOTEBOOK.ipynb ...]``.

``make notebooks`` runs it after ``jupytext --sync``, on every notebook of this folder, with
their full default parameters. The kernel runs the Python that runs this script (a
temporary kernelspec, nothing to install), and its working directory is the notebook's
folder, as in Jupyter. A notebook is written back only if every cell ran; on a cell error
the script prints the error, leaves that notebook as it was and exits with status 1.
tests/test_notebooks.py runs notebooks through the same functions, with short parameters.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode

HERE = Path(__file__).resolve().parent
KERNEL = "python3"
CELL_TIMEOUT_S = 1200


def kernel_specs(root: Path, python: str = sys.executable,
                 env: dict[str, str] | None = None) -> KernelSpecManager:
    """A ``python3`` kernelspec under ``root`` running ``python``, so the kernel is that
    interpreter whatever kernelspecs the user or the system has installed; ``env`` is added
    to the kernel's environment (e.g. ``RAY_ADDRESS``: the notebooks' runs join that Ray
    cluster instead of starting one)."""
    (root / KERNEL).mkdir(parents=True, exist_ok=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec: dict[str, object] = {"argv": argv, "display_name": "Python 3 (rafale)",
                               "language": "python"}
    if env:
        spec["env"] = dict(env)
    (root / KERNEL / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root)])


def execute(nb: NotebookNode, cwd: Path, specs: KernelSpecManager,
            timeout_s: float = CELL_TIMEOUT_S) -> NotebookNode:
    """Run every cell of ``nb`` (in place) on a new kernel working in ``cwd``.

    Raises nbclient's ``CellExecutionError`` on the first cell error. Timing metadata is
    not recorded, so that re-running a notebook changes only its outputs.
    """
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    client = NotebookClient(nb, km=km, timeout=timeout_s, kernel_name=KERNEL,
                            record_timing=False, resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    finally:
        if km.has_kernel:  # a client given a km leaves its kernel (and the kernel's Ray) up
            km.shutdown_kernel(now=False)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to execute (default: every .ipynb of notebooks/)")
    parser.add_argument("--timeout-s", type=float, default=CELL_TIMEOUT_S,
                        help=f"most seconds one cell may run (default {CELL_TIMEOUT_S})")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="rafale-kernels-") as root:
        specs = kernel_specs(Path(root))
        for path in paths:
            print(f"executing {path} ...", flush=True)
            started_s = time.monotonic()
            nb = nbformat.read(path, as_version=4)
            try:
                execute(nb, path.resolve().parent, specs, args.timeout_s)
            except CellExecutionError as error:
                print(f"{path}: a cell failed, notebook left unchanged\n{error}", file=sys.stderr)
                return 1
            nbformat.write(nb, path)
            print(f"wrote {path} ({time.monotonic() - started_s:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
