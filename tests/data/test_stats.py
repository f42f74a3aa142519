"""Dataset statistics by hand: episodes, frames, hours at 20 FPS, frame/action mismatch, skips."""

import io

from rich.console import Console

from system.data.errors import DataError
from system.data.stats import DatasetStats, SourceInfo


def test_groups_and_totals_by_hand():
    stats = DatasetStats()
    stats.add(SourceInfo("Treechop", "a", steps=36001, actions=36000, video_frames=36004, total_reward=64))
    stats.add(SourceInfo("Treechop", "b", steps=35999, actions=35998, video_frames=35999, total_reward=0))
    stats.add(SourceInfo("vpt", "c", steps=100, actions=99, video_frames=0))
    stats.add(SourceInfo("vpt", "d", steps=10, actions=9, video_frames=14, trailing_frames=2))
    stats.skip("Treechop", DataError("/x/rendered.npz", "npz is missing key 'reward'"))
    groups = stats.groups()
    assert groups["Treechop"]["episodes"] == 2 and groups["Treechop"]["steps"] == 72000
    assert groups["Treechop"]["hours"] == 1.0                  # 72000 frames / 20 FPS / 3600 s
    assert groups["Treechop"]["extra_frames"] == 3 and groups["Treechop"]["mismatched"] == 1
    assert groups["Treechop"]["skipped"] == 1 and groups["vpt"]["extra_frames"] == 4   # c: unknown video length
    assert groups["vpt"]["trailing_frames"] == 2 and groups["Treechop"]["trailing_frames"] == 0
    assert stats.totals()["episodes"] == 4 and stats.totals()["skipped"] == 1 and stats.totals()["trailing_frames"] == 2

    out = io.StringIO()
    stats.print(Console(file=out, width=200), per_source=True)
    text = out.getvalue()
    assert "trailing dropped" in text
    assert "1.000" in text and "72000" in text and "npz is missing key 'reward'" in text and "/x/rendered.npz" in text
