"""The embedded target's access log, counted as it grows: each line is read and parsed once.

Counts only ever go up. The log is written without rolling (``target_config``); should it be
replaced or cut anyway (rolled, truncated), counting raises instead of starting again from
zero or from the middle of a line.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AccessLogTally:
    """Whole lines of ``path`` counted so far, by (protocol, status)."""

    path: Path
    offset_bytes: int = 0
    inode: int | None = None
    counts: Counter[tuple[str, int]] = field(default_factory=Counter)

    def update(self) -> None:
        """Count the whole lines written since the last call (a partial last line waits)."""
        try:
            log = self.path.open("rb")
        except FileNotFoundError:
            self._check(None, 0)
            return
        with log:
            stat = os.fstat(log.fileno())
            self._check(stat.st_ino, stat.st_size)
            log.seek(self.offset_bytes)
            data = log.read(stat.st_size - self.offset_bytes)
        whole = data[: data.rfind(b"\n") + 1]
        for line in whole.splitlines():
            entry = json.loads(line)
            self.counts[(entry["request"]["proto"], int(entry["status"]))] += 1
        self.offset_bytes += len(whole)

    def _check(self, inode: int | None, size_bytes: int) -> None:
        """Raise if the file counted so far was replaced or is now shorter."""
        replaced = self.offset_bytes > 0 and inode != self.inode
        if replaced or size_bytes < self.offset_bytes:
            raise RuntimeError(
                f"access log {self.path} was {'replaced' if replaced else 'truncated'} after "
                f"{self.offset_bytes} bytes (now {size_bytes} bytes; rolled?): counts taken "
                "from it would be wrong")
        self.inode = inode

    def count(self, proto: str | None = None, status: int | None = None) -> int:
        """Requests logged so far, optionally only one protocol ("HTTP/2.0") or status."""
        self.update()
        return sum(n for (p, s), n in self.counts.items()
                   if proto in (None, p) and status in (None, s))
