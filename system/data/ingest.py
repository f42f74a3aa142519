"""Writes datasets into the replay store: `python -m system.data.ingest {minerl,vpt,crafter} [ROOT] [options]`.

    python -m system.data.ingest minerl $MINERL_DATA_ROOT run_dir=runs/minerl data.minerl.envs=[MineRLTreechop-v0]
    python -m system.data.ingest vpt /data/vpt/6.13 run_dir=runs/vpt data.ingest.size=[128,128]
    python -m system.data.ingest crafter run_dir=runs/crafter data.collect.episodes=100 data.collect.policy=scripted
    python -m system.data.ingest minerl $MINERL_DATA_ROOT --stats      # statistics only: no decoding, no store

Options: `--config PATH` (the run's YAML) and dotted `key=value` overrides of it, `--stats`, `--per-source`,
`--help`.
Episodes come from minerl_reader / vpt_reader / collect and go through episode_writer.ingest into table
`data.ingest.table`, in the run's action space (resolve_action_space), in chunks of `data.ingest.chunk_length`
steps. A progress bar runs meanwhile; a summary table (and per-environment statistics, the Crafter score for
collections) follows at the end.

Idempotent by episode id: complete episodes are skipped unread, an interrupted one is completed (see
episode_writer.py). Bad input (missing file, truncated mp4, npz missing a key, too few frames, wrong resolution,
...) skips that episode and is listed at the end; other episodes continue.

The store is the one `replay:` configures: a Redis URL (replay.url or $REDIS_URL), else a local redis-server
whose data lives in <run_dir>/redis (run the training with the same run_dir). The embedded in-process store
is refused here: it would vanish when this command exits.

Before any episode is read: a dataset root that holds no streams (empty, another dataset, a folder one level
too deep) fails with the layout expected and what was found; the table's stored settings and step layout are
checked against the config (a mismatch names the key to change, data.ingest.action_space for the layout).
Ctrl-C prints "interrupted: run the same command again to finish ..." and exits with 130.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from system.data.config import DataConfig, IngestConfig
from system.data.episode_writer import IngestReport, IngestSource, ingest
from system.data.errors import DataError
from system.data.stats import DatasetStats
from system.envs.action_space import ActionSpace, action_space_for_env, crafter_action_space, minecraft_action_space
from system.envs.crafter_score import CrafterStats

KINDS = ("minerl", "vpt", "crafter")


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


def summary_table(report: IngestReport, table: str, space: ActionSpace, where: str, store_steps: int,
                  cfg: IngestConfig | None = None, held_out_steps: int | None = None) -> Table:
    out = Table(title="Ingest summary")
    out.add_column("")
    out.add_column("", justify="right")
    rows = [("store", where), ("table", table), ("action space", f"{space.name} ({len(space)} components)"),
            ("episodes written", report.ingested), ("already stored (not read)", report.already_stored),
            ("skipped (bad input)", report.skipped), ("chunks written", report.chunks_added),
            ("chunks already present", report.chunks_present), ("steps written", report.steps_added),
            ("steps now in the table", store_steps), ("chunks evicted", report.evicted_chunks)]
    if cfg is not None and cfg.held_out_every:
        rows += [(f"of the episodes: held out (1 in {cfg.held_out_every})", report.held_out),
                 (f"steps now in table {cfg.held_out_table!r}", held_out_steps)]
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
HELP = USAGE + """

Writes a dataset into the run's replay store (table data.ingest.table), idempotently: run it again after an
interruption and it completes what is missing.

  minerl ROOT   MineRL v0: ROOT/<Env>/<stream>/{recording.mp4, rendered.npz, metadata.json}
  vpt ROOT      VPT contractor data: <name>.mp4 + <name>.jsonl, anywhere under ROOT
  crafter       collect data.collect.episodes Crafter episodes with data.collect.policy

  --config PATH     the run's YAML config; dotted.key=value overrides any key (e.g. run_dir=runs/minerl)
  --stats           statistics from metadata only (minerl, vpt): no decoding, no store
  --per-source      a row per stream or segment in the statistics

The store: replay.url or $REDIS_URL, else a local redis-server in <run_dir>/redis. See docs/data.md."""
INTERRUPTED = ("[yellow]interrupted[/yellow]: run the same command again to finish; stored episodes are not "
               "written twice")


def interrupted(console: Console, message: str) -> int:
    """Ctrl-C: one line and exit status 130. Objects the interrupt left half-built (Crafter loads its textures
    through imageio, whose plugin's __del__ then fails at exit) would print 'Exception ignored ... Traceback'
    after that line: a process that is about to exit on Ctrl-C drops those."""
    sys.unraisablehook = lambda unraisable: None
    console.print(message)
    return 130


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    from system.run.config import load
    from system.run.typed_config import ConfigError

    # Piped output would default to 80 columns, too narrow for the tables.
    console = console or (Console() if sys.stdout.isatty() else Console(width=160))
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        console.print(HELP, highlight=False, markup=False)
        return 0
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
    if not sources:
        stats = DatasetStats()
        for group, error in skipped:
            stats.skip(group, error)
        stats.print(console)
        console.print(f"[red]nothing to ingest[/red] in {root}: every stream found was skipped (above)")
        return 1
    target = resolve_action_space(kind, data, cfg.env.name, {s.group for s in sources})
    try:
        return _ingest_into_store(cfg, kind, sources, skipped, target, console, per_source)
    except KeyboardInterrupt:  # outside the ingest loop: while the store opens or the summary prints
        return interrupted(console, INTERRUPTED)


# Action spaces a table may have been written in, to suggest data.ingest.action_space on a mismatch.
_KNOWN_SPACES = ("crafter", "vpt", "minerl:MineRLNavigate-v0", "minerl:MineRLObtainDiamond-v0")


def layout_mismatch(table: str, held, want, target: ActionSpace, size) -> str | None:
    """None when table layout `held` takes chunks of `want`, else what to change (naming the config keys)."""
    if held is None or held.accepts(want):
        return None
    fixes = []
    if held.frame_shape != want.frame_shape:
        fixes.append(f"data.ingest.size=[{held.frame_shape[0]},{held.frame_shape[1]}]")
    if held.action_dim != want.action_dim or held.action_classes not in (None, want.action_classes):
        spaces = [name for name in _KNOWN_SPACES if action_space_for_env(name).nvec == held.action_classes
                  or (held.action_classes is None and len(action_space_for_env(name)) == held.action_dim)]
        fixes.append(f"data.ingest.action_space={spaces[0]}" if spaces else
                     "data.ingest.action_space to the space the table was written in")
    return (f"table {table!r} holds steps of layout {held.key()} ({held.describe()}); this ingest writes "
            f"{want.key()} ({want.describe()}, action space {target.name!r}, data.ingest.size = {list(size)}). "
            f"Set {' and '.join(fixes)}, or write into another table (data.ingest.table) or store (another run_dir "
            "or replay.key_prefix)")


def _ingest_into_store(cfg, kind, sources, skipped, target, console, per_source) -> int:
    from system.replay import EmbeddedStore, RateLimited, ReplayError, make_store
    from system.replay.chunk import ChunkError, StepLayout
    from system.replay.redis_errors import redact

    run_dir = Path(cfg.run_dir or "runs/dataset")
    table = cfg.data.ingest.table
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
        servers = cfg.replay.local_servers
        url = cfg.replay.url or (os.environ.get(cfg.replay.url_env, "") if cfg.replay.url_env else "")
        where = (", ".join(redact(u.strip()) for u in url.split(",")) if url else
                 f"local redis-server in {run_dir / 'redis'}" if servers == 1 else
                 f"{servers} local redis-servers in {run_dir / 'redis'}, redis-1, ...")
        want = StepLayout((*cfg.data.ingest.size, 3), len(target), target.nvec)
        tables = [table] + ([cfg.data.ingest.held_out_table] if cfg.data.ingest.held_out_every else [])
        for name in tables:  # before reading anything: each table's settings and step layout must fit this ingest
            try:
                store.check_table(name)
                problem = layout_mismatch(name, store.table_layout(name), want, target, cfg.data.ingest.size)
            except ReplayError as error:
                console.print(f"[red]the replay table does not fit this config:[/red] {error}")
                return 1
            if problem:
                console.print(f"[red]the replay table does not fit this ingest:[/red] {problem}")
                return 1
        report = IngestReport()
        for group, error in skipped:
            report.stats.skip(group, error)
        try:
            ingest(store, sources, cfg.data.ingest, target, total=len(sources), console=console, report=report)
            store_steps = store.stats(table).steps
            held_out_steps = store.stats(tables[-1]).steps if len(tables) > 1 else None
        except (ChunkError, ReplayError) as error:
            hint = (" (data.ingest.action_space and data.ingest.size set the layout this ingest writes)"
                    if "step layout" in str(error) else "")
            console.print(f"[red]the store refused the data, stopping:[/red] {error}{hint}")
            return 1
        except RateLimited as error:
            console.print(f"[red]{error}[/red]\nNothing samples while a dataset is ingested, so a table with "
                          "samples_per_insert > 0 blocks: ingest offline data into a table whose "
                          "samples_per_insert is 0 (the same settings the training run then uses)")
            return 1
        except KeyboardInterrupt:
            return interrupted(console, f"{INTERRUPTED} (before it, this run wrote {report.chunks_added} chunks, "
                                        f"{report.steps_added} steps)")
    console.print(summary_table(report, table, target, where, store_steps, cfg.data.ingest, held_out_steps))
    report.stats.print(console, per_source=per_source)
    if kind == "crafter" and report.crafter.returns:
        console.print(crafter_table(report.crafter))
    if report.evicted_chunks:
        console.print(f"[yellow]warning:[/yellow] {report.evicted_chunks} chunks were evicted because the table is "
                      "full; raise replay.tables.<table>.capacity_steps to keep the whole dataset")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
