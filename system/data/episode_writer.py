"""Writing episodes into the replay store, idempotent by episode id: the core of `python -m system.data.ingest`.

    report = ingest(store, sources, cfg.data.ingest, target_space)   # sources: IngestSource, read lazily
    report.ingested, report.already_stored, report.stats.skipped

Each episode goes to cfg.table, or to cfg.held_out_table when it is in the held-out split (config.is_held_out).
For each source: an episode whose chunks are all stored (offsets contiguous from 0, the last chunk `is_last`)
is skipped without reading it. Otherwise it is read, its actions are put into `target_space` by component name
(action_space.project_actions), it is cut into chunks (chunking.py) and every chunk is added; the store
ignores an (episode_id, step_offset) it already holds, so an episode an interrupted run left half-written is
completed, after checking that its last stored chunk equals the regenerated one. A DataError (or actions that
do not fit the space, or an unreadable file) skips the episode and is recorded in `report.stats.skipped`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from system.data.chunking import split_into_chunks
from system.data.config import IngestConfig, is_held_out
from system.data.episode import Episode
from system.data.errors import DataError
from system.data.stats import DatasetStats, SourceInfo
from system.envs.action_space import ActionSpace, project_actions
from system.envs.crafter_score import CrafterStats

# Chunks per store round trip: fewer trips to Redis, while a batch (16 x 64 steps of 64x64 frames = 12 MB) stays
# small. Chunks are committed in order, so an interruption leaves a prefix of the episode stored.
ADD_BATCH = 16


@dataclass(frozen=True)
class IngestSource:
    """One episode to ingest, not read yet."""
    episode_id: str
    group: str                       # environment name, "vpt" or "crafter" (rows of the statistics)
    path: str                        # what an error names when nothing more specific is known
    space: ActionSpace               # the action space the reader yields
    read: Callable[[], Episode]


@dataclass
class IngestReport:
    stats: DatasetStats = field(default_factory=DatasetStats)
    crafter: CrafterStats = field(default_factory=CrafterStats)
    ingested: int = 0                # episodes read and written (fully or their missing part)
    already_stored: int = 0          # episodes found complete in the store, not read
    held_out: int = 0                # of those written or found: episodes of the held-out table
    chunks_added: int = 0
    chunks_present: int = 0          # chunks of re-read episodes the store already held
    steps_added: int = 0
    evicted_chunks: int = 0          # FIFO evictions these adds caused (the table is smaller than the data)

    @property
    def skipped(self) -> int:
        return len(self.stats.skipped)


def is_complete(store, table: str, episode_id: str) -> bool:
    """True when the stored chunks cover steps 0..n without gaps and the last one is marked is_last."""
    chunks = store.episode_chunks(table, episode_id)
    if not chunks:
        return False
    expected = 0
    for offset, length in chunks:
        if offset != expected:
            return False
        expected = offset + length
    last_offset = chunks[-1][0]
    try:
        return bool(store.get_chunk(table, episode_id, last_offset).is_last)
    except KeyError:   # evicted between the two calls
        return False


def _stored_part_matches(store, table: str, chunk) -> bool:
    try:
        stored = store.get_chunk(table, chunk.episode_id, chunk.step_offset)
    except KeyError:
        return True
    return (stored.length == chunk.length and np.array_equal(stored.frames, chunk.frames)
            and np.array_equal(stored.actions, chunk.actions) and np.array_equal(stored.rewards, chunk.rewards))


def ingest(store, sources: Iterable[IngestSource], cfg: IngestConfig, target: ActionSpace, total: int | None = None,
           console: Console | None = None, report: IngestReport | None = None) -> IngestReport:
    """Writes the sources' episodes into `store` (see the module docstring); returns what happened."""
    console = console or Console()
    report = report or IngestReport()
    where = cfg.table
    if cfg.held_out_every:
        where += f" (held out: {cfg.held_out_table}, 1 in {cfg.held_out_every})"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[current]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"ingest -> {where}", total=total, current="")
        for source in sources:
            if cfg.limit and report.ingested + report.already_stored >= cfg.limit:
                break
            progress.update(task, current=source.episode_id[-60:])
            held_out = is_held_out(source.episode_id, cfg.held_out_every)
            table = cfg.held_out_table if held_out else cfg.table
            if is_complete(store, table, source.episode_id):
                report.already_stored += 1
                report.held_out += held_out
                progress.advance(task)
                continue
            try:
                episode = source.read()
                if episode.frames.shape[1:3] != tuple(cfg.size):
                    raise DataError(source.path, f"frames are {episode.frames.shape[1:3]}, the store takes {cfg.size}")
                actions = project_actions(episode.actions, source.space, target)
            except DataError as error:
                report.stats.skip(source.group, error)
            except ValueError as error:   # actions that do not fit the run's action space
                report.stats.skip(source.group, DataError(source.path, str(error)))
            except OSError as error:      # unreadable file (permissions, I/O error)
                report.stats.skip(source.group, DataError(getattr(error, "filename", None) or source.path,
                                                          f"cannot read ({error.strerror or error})"))
            else:
                if _write(store, table, episode, actions, cfg, source, report, target):
                    report.held_out += held_out
            progress.advance(task)
    return report


def _write(store, table: str, episode: Episode, actions: np.ndarray, cfg: IngestConfig, source: IngestSource,
           report: IngestReport, target: ActionSpace) -> bool:
    """Adds the episode's missing chunks; False when it was skipped instead (recorded in report.stats)."""
    chunks = list(split_into_chunks(episode, cfg.chunk_length, cfg.task_id, actions, target.nvec))
    stored = {offset for offset, _ in store.episode_chunks(table, episode.episode_id)}
    overlap = [chunk for chunk in chunks if chunk.step_offset in stored]
    if overlap:   # an interrupted earlier run: its last stored chunk must equal ours at the same offset
        if not _stored_part_matches(store, table, overlap[-1]):
            report.stats.skip(source.group, DataError(source.path, "the store holds a different version of this "
                                                      "episode (other seed, policy or preprocessing); use another "
                                                      "table or replay.key_prefix"))
            return False
    for start in range(0, len(chunks), ADD_BATCH):
        batch = chunks[start:start + ADD_BATCH]
        for chunk, result in zip(batch, store.add_many(table, batch)):
            report.evicted_chunks += result.evicted_chunks
            if result.inserted:
                report.chunks_added += 1
                report.steps_added += chunk.length
            else:
                report.chunks_present += 1
    report.ingested += 1
    metadata = episode.metadata
    report.stats.add(SourceInfo(source.group, episode.episode_id, steps=len(episode),
                                actions=len(episode) - 1, video_frames=int(metadata.get("video_frames", 0)),
                                total_reward=float(episode.rewards.sum()),
                                trailing_frames=int(metadata.get("trailing_frames", 0))))
    if "achievements" in metadata:
        report.crafter.add(metadata)
    return True
