"""Sample-to-insert rate limiter with Reverb's semantics, counted in steps.

In:  the table's counters (size = steps stored now, inserted = steps ever inserted, sampled = steps ever
     sampled) and the number of steps an insert or a sample would add.
Out: whether that insert or sample may go ahead now.

With spi = samples_per_insert, offset = spi * min_size_to_sample and diff = inserted * spi - sampled:
- an insert of n steps may proceed while the table still holds at most min_size_to_sample steps after it,
  or when (inserted + n) * spi - sampled <= offset + error_buffer;
- a sample of m steps needs size >= min_size_to_sample and inserted * spi - (sampled + m) >= offset - error_buffer.
So learners (samplers) and actors (inserters) stay within error_buffer sampled steps of the ratio spi.
spi = 0 switches the ratio off: inserts are always allowed and samples only wait for min_size_to_sample.

Units are steps on both sides, so spi is Dreamer's "train ratio" (replayed steps per environment step).
The Redis backend evaluates the same formulas in Lua (redis_scripts.py) so all clients share one set of
counters; tests check both backends against this class.
"""

from __future__ import annotations

from dataclasses import dataclass


class RateLimited(TimeoutError):
    """The limiter did not allow an insert or sample before the timeout."""


@dataclass(frozen=True)
class RateLimiter:
    samples_per_insert: float = 0.0  # sampled steps per inserted step; 0 = no ratio, only min_size_to_sample
    min_size_to_sample: int = 1  # steps the table must hold before anything is sampled
    error_buffer: float = 0.0  # how far (in sampled steps) the counters may drift from the ratio

    def __post_init__(self) -> None:
        if self.samples_per_insert < 0:
            raise ValueError(f"samples_per_insert = {self.samples_per_insert} must be >= 0")
        if self.min_size_to_sample < 1:
            raise ValueError(f"min_size_to_sample = {self.min_size_to_sample} must be >= 1")
        if self.error_buffer < 0:
            raise ValueError(f"error_buffer = {self.error_buffer} must be >= 0")

    @property
    def _offset(self) -> float:
        return self.samples_per_insert * self.min_size_to_sample

    def can_insert(self, size: int, inserted: int, sampled: int, steps: int) -> bool:
        if self.samples_per_insert == 0 or size + steps <= self.min_size_to_sample:
            return True
        return (inserted + steps) * self.samples_per_insert - sampled <= self._offset + self.error_buffer

    def can_sample(self, size: int, inserted: int, sampled: int, steps: int) -> bool:
        if size < self.min_size_to_sample:
            return False
        if self.samples_per_insert == 0:
            return True
        return inserted * self.samples_per_insert - (sampled + steps) >= self._offset - self.error_buffer

    def check_fits(self, insert_steps: int, sample_steps: int) -> None:
        """Raises ValueError when inserts of `insert_steps` and samples of `sample_steps` could block each other
        forever (both sides waiting): the window 2 * error_buffer must hold one insert and one sample."""
        if self.samples_per_insert and 2 * self.error_buffer < insert_steps * self.samples_per_insert + sample_steps:
            raise ValueError(
                f"rate limiter can deadlock: 2 * error_buffer = {2 * self.error_buffer} is smaller than one insert "
                f"({insert_steps} steps x samples_per_insert {self.samples_per_insert}) plus one sample "
                f"({sample_steps} steps); raise error_buffer to at least "
                f"{(insert_steps * self.samples_per_insert + sample_steps) / 2}")
