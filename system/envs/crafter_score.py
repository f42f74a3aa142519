"""Crafter episode statistics: achievement success rates and the Crafter score.

    stats = CrafterStats()
    stats.add(info["episode"])          # {return, length, achievements: {name: count}} from CrafterEnv
    stats.summary()                     # {episodes, mean_return, mean_length, score, success_rates}

Success rate s_i is the percentage of episodes in which achievement i was unlocked at least once. The score is
the Crafter paper's (Hafner 2021, Eq. 1): S = exp(mean_i ln(1 + s_i)) - 1 over all 22 achievements, with s_i in
percent, so one achievement always reached and none other gives exp(ln(101)/22) - 1 ≈ 0.23.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

# crafter.constants.achievements (sorted); tests check this against the installed package.
CRAFTER_ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling", "collect_stone",
    "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow", "eat_plant", "make_iron_pickaxe",
    "make_iron_sword", "make_stone_pickaxe", "make_stone_sword", "make_wood_pickaxe", "make_wood_sword",
    "place_furnace", "place_plant", "place_stone", "place_table", "wake_up",
)


def success_rates(episodes: Iterable[Mapping[str, int]]) -> dict[str, float]:
    """Per-achievement percentage of episodes (given as {name: count}) that unlocked it at least once."""
    episodes = list(episodes)
    if not episodes:
        return {name: 0.0 for name in CRAFTER_ACHIEVEMENTS}
    for achievements in episodes:
        unknown = set(achievements) - set(CRAFTER_ACHIEVEMENTS)
        if unknown:
            raise ValueError(f"unknown Crafter achievements: {sorted(unknown)}")
    return {name: 100.0 * sum(ep.get(name, 0) > 0 for ep in episodes) / len(episodes) for name in CRAFTER_ACHIEVEMENTS}


def crafter_score(rates: Mapping[str, float]) -> float:
    """Geometric mean of (1 + success rate in percent) over all achievements, minus 1."""
    values = np.array([rates.get(name, 0.0) for name in CRAFTER_ACHIEVEMENTS], dtype=np.float64)
    if np.any((values < 0) | (values > 100)):
        raise ValueError("success rates are percentages in [0, 100]")
    return float(np.exp(np.mean(np.log1p(values))) - 1.0)


class CrafterStats:
    """Accumulates finished episodes and summarises them."""

    def __init__(self):
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.achievements: list[dict[str, int]] = []

    def add(self, episode: Mapping) -> None:
        self.returns.append(float(episode["return"]))
        self.lengths.append(int(episode["length"]))
        self.achievements.append(dict(episode["achievements"]))

    def summary(self) -> dict:
        rates = success_rates(self.achievements)
        return {
            "episodes": len(self.returns),
            "mean_return": float(np.mean(self.returns)) if self.returns else 0.0,
            "mean_length": float(np.mean(self.lengths)) if self.lengths else 0.0,
            "score": crafter_score(rates),
            "success_rates": rates,
        }
