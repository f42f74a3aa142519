"""The sample-to-insert rate limiter keeps actors and learners within error_buffer of the configured ratio."""

import numpy as np
import pytest

from system.replay.limiter import RateLimiter


def simulate(limiter: RateLimiter, insert_steps: int, sample_steps: int, capacity: int, rounds: int, seed: int):
    """Inserters and samplers race at random; each acts only when the limiter allows it. Returns the trace."""
    rng = np.random.default_rng(seed)
    size = inserted = sampled = 0
    trace = []
    for _ in range(rounds):
        if rng.random() < 0.5:
            if limiter.can_insert(size, inserted, sampled, insert_steps):
                inserted += insert_steps
                size = min(capacity, size + insert_steps)
        elif limiter.can_sample(size, inserted, sampled, sample_steps):
            assert size >= limiter.min_size_to_sample, "nothing is sampled before min_size_to_sample"
            sampled += sample_steps
        trace.append((size, inserted, sampled))
    return np.array(trace)


@pytest.mark.parametrize("spi", [0.5, 4.0, 32.0])
def test_counters_stay_within_error_buffer_of_the_ratio(spi):
    limiter = RateLimiter(samples_per_insert=spi, min_size_to_sample=256, error_buffer=2000.0)
    trace = simulate(limiter, insert_steps=64, sample_steps=16 * 4, capacity=10_000, rounds=20_000, seed=1)
    size, inserted, sampled = trace.T
    past_min = inserted > limiter.min_size_to_sample + 64
    diff = inserted * spi - sampled
    offset = spi * limiter.min_size_to_sample
    # An insert may overshoot the upper bound by at most one insert, a sample never passes the lower one.
    assert (diff[past_min] <= offset + limiter.error_buffer + 64 * spi).all()
    assert (diff[sampled > 0] >= offset - limiter.error_buffer).all()
    assert sampled[-1] > 0 and inserted[-1] > 10 * limiter.min_size_to_sample, "neither side starved"
    assert abs(sampled[-1] / inserted[-1] - spi) < 0.5 * spi, "the long-run ratio is the configured one"


def test_sampling_waits_for_min_size_and_inserts_are_free_until_then():
    limiter = RateLimiter(samples_per_insert=1.0, min_size_to_sample=100, error_buffer=10.0)
    assert not limiter.can_sample(size=99, inserted=99, sampled=0, steps=1)
    assert limiter.can_insert(size=90, inserted=1000, sampled=0, steps=10), "free until min size is reached"
    assert not limiter.can_insert(size=100, inserted=1000, sampled=0, steps=10)
    assert limiter.can_sample(size=100, inserted=1000, sampled=0, steps=10)


def test_ratio_zero_means_only_min_size():
    limiter = RateLimiter(samples_per_insert=0.0, min_size_to_sample=5)
    assert limiter.can_insert(size=10**6, inserted=10**9, sampled=0, steps=64)
    assert limiter.can_sample(size=5, inserted=5, sampled=10**9, steps=10**6)
    assert not limiter.can_sample(size=4, inserted=5, sampled=0, steps=1)


def test_settings_that_can_deadlock_are_refused():
    limiter = RateLimiter(samples_per_insert=2.0, min_size_to_sample=1, error_buffer=100.0)
    limiter.check_fits(insert_steps=10, sample_steps=180)
    with pytest.raises(ValueError, match="can deadlock.*at least 140"):
        limiter.check_fits(insert_steps=64, sample_steps=152)
    with pytest.raises(ValueError, match="min_size_to_sample"):
        RateLimiter(min_size_to_sample=0)
    with pytest.raises(ValueError, match="samples_per_insert"):
        RateLimiter(samples_per_insert=-1)
