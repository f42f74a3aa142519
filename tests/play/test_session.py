"""A play session is the cached sampler and the tokenizer and nothing else: its frames equal a direct
CachedSampler run decoded over the whole episode, with the noise drawn in the documented order; K may change
between frames; a seed reproduces a world and the actions steer it."""

import numpy as np
import pytest

from system.imagination.generation import GenerationConfig
from system.play.session import PlaySession
from tests.helpers.play_run import TOKENIZER, sampler_frames, tiny_play_models
from tests.helpers.dynamics import one_thread  # noqa: F401 (autouse fixture)

GENERATION = GenerationConfig(sampling_steps=4, context_noise=0.1)


@pytest.fixture(scope="module")
def models():
    return tiny_play_models(seed=0)


def context(seed: int = 0, frames: int = 3):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (frames, *TOKENIZER.image_size, 3), dtype=np.uint8)
    actions = rng.integers(0, 17, (frames, 1)).astype(np.int32)
    actions[0] = -1
    return pixels, actions


def play(models, actions, ks, seed=5, ctx_seed=0):
    tokenizer, dynamics = models
    session = PlaySession(tokenizer, dynamics, GENERATION, dynamics.transformer.new_cache(1))
    session.start(*context(ctx_seed), seed=seed)
    return np.stack([session.step(np.array([a]), k) for a, k in zip(actions, ks)])


def direct(models, actions, ks, seed=5, ctx_seed=0):
    frames, ctx_actions = context(ctx_seed)
    return sampler_frames(*models, frames, ctx_actions, seed, [[a] for a in actions], ks)


def test_frames_equal_the_cached_sampler_run_directly_also_across_k_switches(models):
    actions, ks = [3, 3, 5, 0, 1, 1, 2], [4, 4, 1, 1, 16, 2, 4]   # 7 frames: the C = 4 ring wraps
    played, reference = play(models, actions, ks), direct(models, actions, ks)
    assert played.shape == (7, 64, 64, 3) and played.dtype == np.uint8
    # float sums in another order (window vs whole-episode decode) may move a value across a rounding edge
    assert np.abs(played.astype(int) - reference.astype(int)).max() <= 1
    assert (played == reference).mean() > 0.99
    # not vacuous: other noise gives other frames
    assert np.abs(play(models, actions, ks, seed=6).astype(int) - played.astype(int)).max() > 10


def test_the_actions_steer_and_a_seed_reproduces_the_world(models):
    ks = [4] * 4
    left, again = play(models, [1, 1, 1, 1], ks), play(models, [1, 1, 1, 1], ks)
    right = play(models, [2, 2, 2, 2], ks)
    assert np.array_equal(left, again)
    assert np.abs(left.astype(int) - right.astype(int)).max() > 3   # well past the rounding tolerance (1)


def test_a_restart_forgets_the_previous_world(models):
    tokenizer, dynamics = models
    session = PlaySession(tokenizer, dynamics, GENERATION, dynamics.transformer.new_cache(1))
    session.start(*context(1), seed=9)
    for a in (4, 4, 4, 4, 4, 4):
        session.step(np.array([a]), 4)
    session.start(*context(), seed=5)
    assert session.t == 3
    reused = np.stack([session.step(np.array([a]), 4) for a in (1, 2)])
    assert np.array_equal(reused, play(models, [1, 2], [4, 4]))


def test_step_before_start_is_an_error(models):
    tokenizer, dynamics = models
    with pytest.raises(RuntimeError, match="before start"):
        PlaySession(tokenizer, dynamics, GENERATION, dynamics.transformer.new_cache(1)).step(np.array([0]), 4)

