"""DataError: bad input on disk, with the file and the reason, so an ingest can report it and move on.

`contents(root)` says what a directory holds, for errors about a dataset root that is not laid out as expected.
"""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A file that cannot be read as the format says: `path` names it, `reason` says why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def contents(root: Path, limit: int = 8) -> str:
    """'an empty directory', or 'N entries: a/, b.txt, ...' (folders end in '/')."""
    entries = sorted(root.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    if not entries:
        return "an empty directory"
    names = [p.name + "/" * p.is_dir() for p in entries[:limit]]
    more = f", ... ({len(entries) - limit} more)" if len(entries) > limit else ""
    return f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: {', '.join(names)}{more}"
