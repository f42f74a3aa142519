"""A play world opened from a run: K choices up to the checkpoint's K_max, the run's K as the default, the
run's context length, and a context longer than the cache window refused."""

import pytest

from system.play.controls import CrafterControls
from system.play.start_frames import CrafterStarts
from system.play.world import open_world
from tests.helpers.play_run import tiny_run


def test_a_world_from_a_run(tmp_path):
    run = tiny_run(tmp_path / "run", overrides=("dynamics.model.k_max=8",))
    world, models = open_world(run, slots=3, max_fps=0)
    try:
        assert world.k_choices == [1, 2, 4, 8] and world.default_k == models.cfg.dynamics.generation.sampling_steps
        assert isinstance(world.controls, CrafterControls) and isinstance(world.starts, CrafterStarts)
        assert world.starts.context_frames == models.cfg.dynamics.eval_context and world.slots.free_count == 3
    finally:
        world.close()
    with pytest.raises(ValueError, match="--context-frames 17 exceeds the dynamics' context window C = 16"):
        open_world(run, context_frames=17)
