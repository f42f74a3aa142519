"""DataError: bad input on disk, with the file and the reason, so an ingest can report it and move on."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A file that cannot be read as the format says: `path` names it, `reason` says why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
