"""rafale installs as one package: a wheel built from the repo holds only ``rafale``, works
in a fresh virtualenv, and the copy shipped to Ray nodes imports without an install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from rafale.cluster import placement

pytestmark = pytest.mark.slow
# What a wheel is built from: the tree without its venv, git data and build outputs.
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "results",
                                    "__pycache__", ".coverage*")

ROOT = Path(__file__).resolve().parents[1]
DEPENDENCIES = Path(sysconfig.get_paths()["purelib"])  # this venv: rafale's dependencies


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the tree: setuptools writes build/ and *.egg-info
    into the tree it builds, and two xdist workers building from the repo at the same
    instant broke one build (CI); each worker that needs the wheel builds its own."""
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source") / "rafale"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--no-build-isolation", "-w", str(out), str(source)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("rafale-*.whl")
    return found


def fresh_python(directory: Path) -> Path:
    """A new virtualenv (no pip, nothing of rafale) that sees this venv's dependencies
    through a .pth line: a path added that way is not a site directory, so the editable
    install's own .pth (its import hook for the source tree) is not run there."""
    venv.EnvBuilder(with_pip=False).create(directory)
    python = directory / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    Path(site.stdout.strip(), "dependencies.pth").write_text(f"{DEPENDENCIES}\n")
    return python


def run_in(python: Path, code: str, cwd: Path, **env: str) -> str:
    done = subprocess.run([str(python), "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_wheel_holds_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(top_level).decode().split() == ["rafale"]
    assert {n.split("/")[0] for n in names} == {"rafale", wheel.name.split("-py3")[0] +
                                                ".dist-info"}
    for module in ("rafale/__init__.py", "rafale/actors/contract.py", "rafale/cluster/run.py",
                   "rafale/analysis/store.py", "rafale/cluster/configs/onprem.yaml"):
        assert module in names
    assert not [n for n in names if n.startswith(("benchmarks/", "tests/"))]


def test_the_wheel_works_in_a_fresh_virtualenv(wheel: Path, tmp_path: Path) -> None:
    python = fresh_python(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run_in(python, "import rafale; rafale.start; print(rafale.__file__)", elsewhere)
    assert str(tmp_path / "venv") in where
    run_in(python, "import rafale.analysis, rafale.analysis.store, sys; "
                   "assert 'ray' not in sys.modules and 'pycurl' not in sys.modules", elsewhere)
    run_in(python, "import rafale, sys; rafale.load, rafale.plots, rafale.frames; "
                   "assert 'ray' not in sys.modules and 'pycurl' not in sys.modules", elsewhere)
    version = run_in(python, "import rafale; print(rafale.__version__)", elsewhere)
    assert version.strip()[0].isdigit()
    helped = subprocess.run([str(python), "-m", "rafale.cluster.cli", "--help"], cwd=elsewhere,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "run" in helped.stdout, helped.stderr


def test_the_copy_shipped_to_ray_nodes_imports_without_rafale_installed(tmp_path: Path) -> None:
    staged = placement.package_for_nodes(tmp_path / "staging")
    assert not [p for p in staged.rglob("*") if p.is_symlink()]
    assert (staged / "actors" / "sender.py").is_file() and (staged / "__init__.py").is_file()
    python = fresh_python(tmp_path / "venv")
    code = ("import rafale, rafale.actors.sender, rafale.actors.contract; "
            "print(rafale.__file__)")
    where = run_in(python, code, tmp_path, PYTHONPATH=str(staged.parent))
    assert str(staged) in where
    missing = subprocess.run([str(python), "-c", "import rafale"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert missing.returncode != 0  # the fresh venv really has no rafale of its own
