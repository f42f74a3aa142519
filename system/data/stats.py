"""Dataset statistics: per-source and per-group (environment) episodes, frames, hours and frame/action mismatch.

    stats = DatasetStats()
    stats.add(SourceInfo("MineRLTreechop-v0", "v3_x", steps=1001, actions=1000, video_frames=1003))
    stats.skip("MineRLTreechop-v0", DataError(path, "missing file"))
    stats.print()                        # rich tables: one row per group, then skipped sources with reasons

`steps` counts frames kept as episode steps (T+1 for T actions in MineRL), `video_frames` the frames in the
video; `extra_frames = video_frames - steps` is the action/frame mismatch (MineRL's leading frames that come
before the first state, or VPT frames dropped with null actions or after the last action line).
`trailing_frames` counts those last ones on their own: VPT video frames past the final jsonl line, which its
rules drop (no action goes with them). Hours are steps / fps / 3600 at 20 FPS.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from system.data.errors import DataError

FPS = 20


@dataclass(frozen=True)
class SourceInfo:
    group: str               # environment name (MineRL) or "vpt"
    name: str                # stream / segment name
    steps: int               # episode steps (frames kept)
    actions: int             # labelled actions in the source
    video_frames: int        # frames in the video (0 if unknown)
    total_reward: float = 0.0
    trailing_frames: int = 0  # video frames after the last action line, dropped (VPT)

    @property
    def extra_frames(self) -> int:
        return max(self.video_frames - self.steps, 0) if self.video_frames else 0


class DatasetStats:
    def __init__(self, fps: int = FPS):
        self.fps = fps
        self.sources: list[SourceInfo] = []
        self.skipped: list[tuple[str, DataError]] = []

    def add(self, info: SourceInfo) -> None:
        self.sources.append(info)

    def skip(self, group: str, error: DataError) -> None:
        self.skipped.append((group, error))

    def groups(self) -> dict[str, dict]:
        rows: dict[str, dict] = defaultdict(lambda: {"episodes": 0, "steps": 0, "hours": 0.0, "extra_frames": 0,
                                                      "mismatched": 0, "trailing_frames": 0, "reward": 0.0,
                                                      "skipped": 0})
        for info in self.sources:
            row = rows[info.group]
            row["episodes"] += 1
            row["steps"] += info.steps
            row["hours"] += info.steps / self.fps / 3600
            row["extra_frames"] += info.extra_frames
            row["mismatched"] += info.extra_frames > 0
            row["trailing_frames"] += info.trailing_frames
            row["reward"] += info.total_reward
        for group, _ in self.skipped:
            rows[group]["skipped"] += 1
        return dict(sorted(rows.items()))

    def totals(self) -> dict:
        groups = self.groups().values()
        return {key: sum(row[key] for row in groups) for key in
                ("episodes", "steps", "hours", "extra_frames", "mismatched", "trailing_frames", "skipped")}

    def group_table(self, title: str = "Dataset") -> Table:
        table = Table(title=title)
        for column in ("group", "episodes", "frames", "hours @20FPS", "mean reward", "extra frames",
                       "mismatched", "trailing dropped", "skipped"):
            table.add_column(column, justify="left" if column == "group" else "right")
        for group, row in self.groups().items():
            mean_reward = row["reward"] / row["episodes"] if row["episodes"] else 0.0
            table.add_row(group, str(row["episodes"]), str(row["steps"]), f"{row['hours']:.3f}", f"{mean_reward:.2f}",
                          str(row["extra_frames"]), str(row["mismatched"]), str(row["trailing_frames"]),
                          str(row["skipped"]))
        totals = self.totals()
        table.add_row("total", str(totals["episodes"]), str(totals["steps"]), f"{totals['hours']:.3f}", "",
                      str(totals["extra_frames"]), str(totals["mismatched"]), str(totals["trailing_frames"]),
                      str(totals["skipped"]), style="bold")
        return table

    def source_table(self) -> Table:
        table = Table(title="Per source")
        for column in ("group", "source", "steps", "actions", "video frames", "extra frames", "trailing dropped",
                       "reward"):
            table.add_column(column, justify="left" if column in ("group", "source") else "right")
        for info in self.sources:
            table.add_row(info.group, info.name, str(info.steps), str(info.actions), str(info.video_frames),
                          str(info.extra_frames), str(info.trailing_frames), f"{info.total_reward:.2f}")
        return table

    def skipped_table(self) -> Table:
        table = Table(title="Skipped")
        table.add_column("group")
        table.add_column("file")
        table.add_column("reason")
        for group, error in self.skipped:
            table.add_row(group, error.path, error.reason)
        return table

    def print(self, console: Console | None = None, per_source: bool = False) -> None:
        console = console or Console()
        if per_source and self.sources:
            console.print(self.source_table())
        console.print(self.group_table())
        if self.skipped:
            console.print(self.skipped_table())
