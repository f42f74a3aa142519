"""Crafter score and success rates, checked against hand-computed numbers."""

import math

import crafter
import pytest

from system.envs.crafter_score import CRAFTER_ACHIEVEMENTS, CrafterStats, crafter_score, success_rates


def test_achievement_list_is_crafters():
    assert list(CRAFTER_ACHIEVEMENTS) == list(crafter.constants.achievements) and len(CRAFTER_ACHIEVEMENTS) == 22


def test_success_rates_count_episodes_not_unlocks():
    rates = success_rates([{"collect_wood": 3, "place_table": 1}, {"collect_wood": 1}])
    assert rates["collect_wood"] == 100.0 and rates["place_table"] == 50.0 and rates["collect_coal"] == 0.0


def test_score_by_hand():
    rates = {"collect_wood": 100.0, "place_table": 50.0}
    # exp((ln 101 + ln 51 + 20 * ln 1) / 22) - 1 = exp(8.546946 / 22) - 1 = 0.474773
    assert crafter_score(rates) == pytest.approx(0.474773, abs=1e-5)
    assert crafter_score({}) == 0.0
    assert crafter_score({n: 100.0 for n in CRAFTER_ACHIEVEMENTS}) == pytest.approx(100.0)
    assert crafter_score({"wake_up": 100.0}) == pytest.approx(math.exp(math.log(101) / 22) - 1)
    with pytest.raises(ValueError):
        crafter_score({"wake_up": 150.0})


def test_stats_summary():
    stats = CrafterStats()
    stats.add({"return": 2.0, "length": 10, "achievements": {"collect_wood": 1, "wake_up": 0}})
    stats.add({"return": 0.0, "length": 30, "achievements": {"collect_wood": 0}})
    summary = stats.summary()
    assert summary["episodes"] == 2 and summary["mean_return"] == 1.0 and summary["mean_length"] == 20.0
    assert summary["success_rates"]["collect_wood"] == 50.0
    assert summary["score"] == pytest.approx(math.exp(math.log(51) / 22) - 1)
    with pytest.raises(ValueError, match="unknown"):
        success_rates([{"fly": 1}])
