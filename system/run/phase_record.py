"""Which phases of a run finished, kept in <run_dir>/phases.json, so a resumed run does not redo them.

    if phase_finished(run_dir, "tokenizer", steps):    # trained to `steps` and evaluated: load, skip the rest
        ...
    mark_finished(run_dir, "tokenizer", step)           # after the phase's evaluation and pictures are written

A checkpoint at the last step is not enough: the driver may die during the phase's evaluation, after the
final checkpoint. A phase counts as finished only once everything it writes is written. Raising the step count
of a finished phase (a longer run in the same directory) makes it unfinished again: it resumes training.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE = "phases.json"


def finished_phases(run_dir: str | Path) -> dict[str, int]:
    path = Path(run_dir) / FILE
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or not all(isinstance(v, int) for v in record.values()):
        raise ValueError(f"{path}: expected {{phase: final step}}, got {record!r}")
    return record


def phase_finished(run_dir: str | Path, phase: str, steps: int) -> bool:
    done = finished_phases(run_dir).get(phase)
    return done is not None and done >= steps


def mark_finished(run_dir: str | Path, phase: str, step: int) -> None:
    path = Path(run_dir) / FILE
    record = {**finished_phases(run_dir), phase: int(step)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)  # a kill mid-write leaves the old record, never half a file
