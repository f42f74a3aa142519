"""Progress bars for long work: live on a terminal, a line every 30 s when output goes to a log or pipe."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(iterable=None, desc: str = "", total: int | None = None, initial: int = 0) -> tqdm:
    interactive = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, initial=initial, dynamic_ncols=True,
                mininterval=0.5 if interactive else 30.0, maxinterval=60.0)
