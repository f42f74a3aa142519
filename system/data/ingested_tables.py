"""The main job on an ingested dataset (env.name = minerl:<Env>): what `python -m system.data.ingest` stored.

    space = run_action_space(cfg)                               # the space the tables were written in
    check_ingested_tables(cfg, store, space)                    # refuses empty or mismatched tables, saying why
    frames, actions = held_out_from_table(store, cfg, clips=8, frames=64)

Phases 1 and 2 train from table data.ingest.table. Held-out clips come from data.ingest.held_out_table, which
ingest fills with 1 in data.ingest.held_out_every episodes (chosen by episode id, never trained on): `clips`
windows of `frames` consecutive steps, drawn uniformly over every stored window (any offset, not only episode
starts) by the store's seeded generator before anything else samples, so a resumed run evaluates on the same
clips. Out: frames (clips, frames, H, W, 3) uint8, actions (clips, frames, A) int32 (-1 = no label).
"""

from __future__ import annotations

import numpy as np

from system.envs.action_space import ActionSpace, action_space_for_env
from system.replay import ReplayError
from system.replay.chunk import StepLayout


def run_action_space(cfg) -> ActionSpace:
    """data.ingest.action_space when set (the space ingest wrote), else the run's env's."""
    return action_space_for_env(cfg.data.ingest.action_space or cfg.env.name)


def ingest_command(cfg) -> str:
    kind = "vpt" if cfg.data.ingest.action_space == "vpt" else "minerl"
    root = "$VPT_DATA_ROOT" if kind == "vpt" else "$MINERL_DATA_ROOT"
    where = f" run_dir={cfg.run_dir}" if cfg.run_dir and not cfg.replay.url else ""
    return (f"`python -m system.data.ingest {kind} {root} --config <this run's config>{where}` (same replay "
            "settings as this run)")


def check_ingested_tables(cfg, store, space: ActionSpace) -> str:
    """Raises ReplayError unless the training and held-out tables hold steps of this run's layout; returns a
    one-line summary of what they hold."""
    ingest = cfg.data.ingest
    if not ingest.held_out_every:
        raise ReplayError(f"env.name = {cfg.env.name!r} trains from an ingested dataset and evaluates on held-out "
                          "episodes of it: set data.ingest.held_out_every (e.g. 20) and ingest with that setting, "
                          f"{ingest_command(cfg)}")
    want = StepLayout((*ingest.size, 3), len(space), space.nvec)
    held = []
    for table, role in ((ingest.table, "training"), (ingest.held_out_table, "held-out")):
        store.check_table(table)
        steps = store.stats(table).steps
        if steps == 0:
            raise ReplayError(f"the {role} table {table!r} is empty: env.name = {cfg.env.name!r} trains from a "
                              f"dataset that ingest stores; fill it with {ingest_command(cfg)}")
        layout = store.table_layout(table)
        if layout is not None and not layout.accepts(want):
            raise ReplayError(f"table {table!r} holds steps of layout {layout.key()} ({layout.describe()}), this run "
                              f"reads {want.key()} ({want.describe()}: action space {space.name!r} from "
                              f"data.ingest.action_space / env.name, data.ingest.size = {list(ingest.size)}); "
                              "set those to what the table was ingested with")
        held.append(f"{steps} steps in table {table!r} ({role})")
    return "replay: dataset run, " + ", ".join(held)


def held_out_from_table(store, cfg, clips: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    batch = store.sample_contexts(cfg.data.ingest.held_out_table, clips, frames)
    return batch.frames, batch.actions
