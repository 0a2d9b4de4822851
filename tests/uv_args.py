"""The package indexes pip is configured with here, as uv's arguments.

`make` installs rafale's environment with uv (~5 s) rather than pip (~30 s), from the same
indexes: pip's configuration (pip.conf files and PIP_* variables, as ``pip config list``
shows them) passed on as ``--index-url``, ``--extra-index-url``, ``--find-links`` and
``--constraint``, and ``--index-strategy unsafe-best-match`` so that uv, like pip, takes the
highest version found on any index. The Makefile falls back to pip when uv cannot be had.
Standard library only: it runs in the new, empty venv.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

FLAGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
         "find-links": "--find-links", "constraint": "--constraint"}


def uv_args(config_list: str) -> list[str]:
    """``pip config list`` output -> uv arguments (a later scope, e.g. :env:, wins)."""
    values: dict[str, str] = {}
    for line in config_list.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in FLAGS:
            values[name] = value.strip().strip("'\"")
    args = ["--index-strategy", "unsafe-best-match"]
    for name, flag in FLAGS.items():
        for value in values.get(name, "").split():
            args += [flag, value]
    return args


def main() -> int:
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            capture_output=True, text=True, check=True).stdout
    print(shlex.join(uv_args(listed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
