"""Writes datasets into the replay store: `python -m system.data.ingest {minerl,vpt,crafter} [ROOT] [options]`.

    python -m system.data.ingest minerl $MINERL_DATA_ROOT run_dir=runs/minerl data.minerl.envs=[MineRLTreechop-v0]
    python -m system.data.ingest vpt /data/vpt/6.13 run_dir=runs/vpt data.ingest.size=[128,128]
    python -m system.data.ingest crafter run_dir=runs/crafter data.collect.episodes=100 data.collect.policy=scripted
    python -m system.data.ingest minerl $MINERL_DATA_ROOT --stats      # statistics only: no decoding, no store

Options: `--config PATH` (the run's YAML) and dotted `key=value` overrides of it, `--stats`, `--per-source`.
Each episode is read (minerl_reader / vpt_reader / collect), its actions are put into the run's action space,
it is cut into chunks of `data.ingest.chunk_length` steps and added to table `data.ingest.table`. A progress
bar runs meanwhile; a summary table (and per-environment statistics, the Crafter score for collections)
follows at the end.

Idempotent by episode id: an episode whose chunks are all stored, the last one marked is_last, is skipped without
reading it; a partly stored one (an interrupted run) is read again and only its missing chunks are inserted
(`store.add` ignores a (episode_id, step_offset) it already holds), after checking that the stored part equals
the regenerated one. Bad input (DataError: missing file, truncated mp4, npz missing a key, too few frames,
wrong resolution, ...) skips that episode and is listed at the end; other episodes continue.

The store is the one `replay:` configures: a Redis URL (replay.url or $REDIS_URL), else a local redis-server
whose data lives in <run_dir>/redis (run the training with the same run_dir). The embedded in-process store
is refused here: it would vanish when this command exits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from system.data.chunking import split_into_chunks
from system.data.config import DataConfig, IngestConfig
from system.data.episode import Episode
from system.data.errors import DataError
from system.data.stats import DatasetStats, SourceInfo
from system.envs.action_space import (
    ActionSpace,
    action_space_for_env,
    crafter_action_space,
    minecraft_action_space,
    project_actions,
)
from system.envs.crafter_score import CrafterStats

KINDS = ("minerl", "vpt", "crafter")


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
    table = cfg.table
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[current]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"ingest -> {table}", total=total, current="")
        for source in sources:
            if cfg.limit and report.ingested + report.already_stored >= cfg.limit:
                break
            progress.update(task, current=source.episode_id[-60:])
            if is_complete(store, table, source.episode_id):
                report.already_stored += 1
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
                _write(store, table, episode, actions, cfg, source, report)
            progress.advance(task)
    return report


def _write(store, table: str, episode: Episode, actions: np.ndarray, cfg: IngestConfig, source: IngestSource,
           report: IngestReport) -> None:
    chunks = list(split_into_chunks(episode, cfg.chunk_length, cfg.task_id, actions))
    stored = {offset for offset, _ in store.episode_chunks(table, episode.episode_id)}
    overlap = [chunk for chunk in chunks if chunk.step_offset in stored]
    if overlap:   # an interrupted earlier run: its last stored chunk must equal ours at the same offset
        if not _stored_part_matches(store, table, overlap[-1]):
            report.stats.skip(source.group, DataError(source.path, "the store holds a different version of this "
                                                      "episode (other seed, policy or preprocessing); use another "
                                                      "table or replay.key_prefix"))
            return
    for chunk in chunks:
        result = store.add(table, chunk)
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
                                total_reward=float(episode.rewards.sum())))
    if "achievements" in metadata:
        report.crafter.add(metadata)


# ---- sources --------------------------------------------------------------------------------------------------

def minerl_sources(root: str | Path, data: DataConfig) -> tuple[list[IngestSource], list[tuple[str, DataError]]]:
    from system.data.minerl_reader import find_minerl_streams, read_minerl_stream

    streams, skipped = find_minerl_streams(root, data.minerl.envs)
    cfg = data.ingest
    sources = [IngestSource(s.episode_id, s.env_name, str(s.path), minecraft_action_space(s.env_name),
                            lambda s=s: read_minerl_stream(
                                s, size=cfg.size, resize=cfg.resize,
                                duplicate_last_frame=data.minerl.duplicate_last_frame,
                                expect_source_size=(64, 64) if data.minerl.check_resolution else None))
               for s in streams]
    return sources, skipped


def vpt_sources(root: str | Path, data: DataConfig) -> tuple[list[IngestSource], list[tuple[str, DataError]]]:
    from system.data.vpt_reader import SOURCE_SIZE, VptOptions, find_vpt_segments, read_vpt_segment

    segments, skipped = find_vpt_segments(root)
    v, cfg = data.vpt, data.ingest
    options = VptOptions(v.drop_null_actions, v.fix_stuck_attack, v.hotbar_from_state, v.draw_cursor)
    sources = [IngestSource(s.episode_id, "vpt", str(s.video), minecraft_action_space(),
                            lambda s=s: read_vpt_segment(s, size=cfg.size, resize=cfg.resize, options=options,
                                                         expect_source_size=SOURCE_SIZE if v.check_resolution
                                                         else None))
               for s in segments]
    return sources, skipped


def crafter_ingest_sources(data: DataConfig) -> list[IngestSource]:
    from system.data.collect import crafter_sources

    return [IngestSource(s.episode_id, "crafter", s.episode_id, crafter_action_space(), s.read)
            for s in crafter_sources(data.collect, size=data.ingest.size)]


def resolve_action_space(kind: str, data: DataConfig, env_name: str, groups: set[str]) -> ActionSpace:
    """The action space episodes are stored in: data.ingest.action_space, else the run's env when it is the same
    kind of world, else the sources' own (for several MineRL envs: the Obtain space every v0 env fits in)."""
    if data.ingest.action_space:
        return action_space_for_env(data.ingest.action_space)
    if (env_name != "crafter") == (kind in ("minerl", "vpt")):
        return action_space_for_env(env_name)
    if kind == "crafter":
        return crafter_action_space()
    if kind == "vpt" or not groups:
        return minecraft_action_space()
    if len(groups) == 1:
        return minecraft_action_space(next(iter(groups)))
    return minecraft_action_space("MineRLObtainDiamond-v0")


# ---- command line -----------------------------------------------------------------------------------------------

def describe_sources(kind: str, root: str | Path, data: DataConfig) -> DatasetStats:
    """Statistics from metadata only (MineRL: npz + metadata.json; VPT: jsonl + mp4 header)."""
    stats = DatasetStats()
    if kind == "minerl":
        from system.data.minerl_reader import describe_minerl_stream, find_minerl_streams
        items, skipped = find_minerl_streams(root, data.minerl.envs)
        describe, group = describe_minerl_stream, (lambda s: s.env_name)
    else:
        from system.data.vpt_reader import VptOptions, describe_vpt_segment, find_vpt_segments
        items, skipped = find_vpt_segments(root)
        v = data.vpt
        options = VptOptions(v.drop_null_actions, v.fix_stuck_attack, v.hotbar_from_state, v.draw_cursor)
        describe, group = (lambda s: describe_vpt_segment(s, options)), (lambda s: "vpt")
    for name, error in skipped:
        stats.skip(name, error)
    for item in items:
        try:
            stats.add(describe(item))
        except DataError as error:
            stats.skip(group(item), error)
    return stats


def summary_table(report: IngestReport, table: str, space: ActionSpace, where: str, store_steps: int) -> Table:
    out = Table(title="Ingest summary")
    out.add_column("")
    out.add_column("", justify="right")
    rows = [("store", where), ("table", table), ("action space", f"{space.name} ({len(space)} components)"),
            ("episodes written", report.ingested), ("already stored (not read)", report.already_stored),
            ("skipped (bad input)", report.skipped), ("chunks written", report.chunks_added),
            ("chunks already present", report.chunks_present), ("steps written", report.steps_added),
            ("steps now in the table", store_steps), ("chunks evicted", report.evicted_chunks)]
    for name, value in rows:
        out.add_row(name, str(value))
    return out


def crafter_table(stats: CrafterStats) -> Table:
    summary = stats.summary()
    out = Table(title=f"Crafter: {summary['episodes']} episodes, score {summary['score']:.2f}, "
                      f"mean return {summary['mean_return']:.2f}, mean length {summary['mean_length']:.0f}")
    out.add_column("achievement")
    out.add_column("success %", justify="right")
    for name, rate in summary["success_rates"].items():
        out.add_row(name, f"{rate:.1f}")
    return out


USAGE = ("usage: python -m system.data.ingest {minerl,vpt,crafter} [ROOT] [--config PATH] [--stats] "
         "[--per-source] [dotted.key=value ...]")


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    from system.config import load
    from system.typed_config import ConfigError

    # Piped output would default to 80 columns, too narrow for the tables.
    console = console or (Console() if sys.stdout.isatty() else Console(width=160))
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in KINDS:
        console.print(USAGE)
        return 2
    kind = args.pop(0)
    root = None
    if kind != "crafter":
        if not args or args[0].startswith("-") or "=" in args[0]:
            console.print(f"{kind} needs the dataset directory\n{USAGE}")
            return 2
        root = args.pop(0)
    stats_only = "--stats" in args
    per_source = "--per-source" in args
    args = [a for a in args if a not in ("--stats", "--per-source")]
    try:
        cfg = load(args)
    except ConfigError as error:
        console.print(f"[red]config error:[/red] {error}")
        return 2
    data: DataConfig = cfg.data

    try:
        if stats_only:
            if kind == "crafter":
                console.print("--stats describes an existing dataset; crafter episodes are collected, not read")
                return 2
            describe_sources(kind, root, data).print(console, per_source=per_source)
            return 0
        if kind == "crafter":
            sources, skipped = crafter_ingest_sources(data), []
        else:
            sources, skipped = (minerl_sources if kind == "minerl" else vpt_sources)(root, data)
    except DataError as error:
        console.print(f"[red]cannot read the dataset:[/red] {error}")
        return 1
    except ValueError as error:   # e.g. a policy factory that cannot be loaded
        console.print(f"[red]error:[/red] {error}")
        return 2
    target = resolve_action_space(kind, data, cfg.env.name, {s.group for s in sources})
    return _ingest_into_store(cfg, kind, sources, skipped, target, console, per_source)


def _ingest_into_store(cfg, kind, sources, skipped, target, console, per_source) -> int:
    from system.replay import EmbeddedStore, RateLimited, ReplayError, make_store
    from system.replay.chunk import ChunkError

    run_dir = Path(cfg.run_dir or "runs/dataset")
    try:
        store = make_store(cfg.replay, run_dir)
    except ReplayError as error:
        console.print(f"[red]cannot open the replay store:[/red] {error}")
        return 1
    with store:
        if isinstance(store, EmbeddedStore):
            console.print("[red]replay.backend resolved to the embedded in-process store[/red], which is lost when "
                          "ingest exits: install redis-server (scripts/install-redis.sh) or set replay.url")
            return 2
        where = cfg.replay.url or f"local redis-server in {run_dir / 'redis'}"
        report = IngestReport()
        for group, error in skipped:
            report.stats.skip(group, error)
        try:
            ingest(store, sources, cfg.data.ingest, target, total=len(sources), console=console, report=report)
        except (ChunkError, ReplayError) as error:
            console.print(f"[red]the store refused the data, stopping:[/red] {error}")
            return 1
        except RateLimited as error:
            console.print(f"[red]{error}[/red]\nNothing samples while a dataset is ingested, so a table with "
                          "samples_per_insert > 0 blocks: ingest offline data into a table whose "
                          "samples_per_insert is 0 (the same settings the training run then uses)")
            return 1
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]: run the same command again to finish; stored episodes "
                          "are not written twice")
            return 130
        store_steps = store.stats(cfg.data.ingest.table).steps
    console.print(summary_table(report, cfg.data.ingest.table, target, where, store_steps))
    report.stats.print(console, per_source=per_source)
    if kind == "crafter" and report.crafter.returns:
        console.print(crafter_table(report.crafter))
    if report.evicted_chunks:
        console.print(f"[yellow]warning:[/yellow] {report.evicted_chunks} chunks were evicted because the table is "
                      "full; raise replay.tables.<table>.capacity_steps to keep the whole dataset")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
