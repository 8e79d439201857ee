"""Reading and writing the JSON files of the command line's disk caches.

Invariants shared by every cache built on these helpers (`core.template_cache`,
`core.entrypoints`):
- a cache file is only ever a hint: `read_json` turns any failure (missing, unreadable, not
  UTF-8, not JSON, absurdly nested) into None, and callers check the shape and key of what they
  read before using it;
- `write_json` writes a temporary file in the same directory, then renames it over the target
  (`os.replace`), so a concurrent reader sees the old file or the new one, never half of one; it
  never raises for a read-only or full disk (a cache must not make a command fail);
- `prune` keeps a directory to a bounded number of cache files, most recently written first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_json(path: Path) -> Any | None:
    """The JSON document in `path`, or None for anything that is not one."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None


def write_json(path: Path, document: Any) -> bool:
    """Replace `path` with `document` atomically; False, and nothing written, on failure."""
    import tempfile  # only a cache miss writes: keep the import off the warm path

    temporary = None
    try:
        payload = json.dumps(document, ensure_ascii=False).encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(temporary, path)
    except (OSError, ValueError):  # a full disk, or a path that cannot be encoded
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        return False
    return True


def prune(directory: Path, pattern: str, keep: int) -> None:
    """Delete all but the `keep` most recently written files matching `pattern`."""
    try:
        stamped = [(p.stat().st_mtime_ns, p) for p in directory.glob(pattern)]
        for _, path in sorted(stamped, reverse=True)[keep:]:
            path.unlink(missing_ok=True)
    except OSError:
        pass
