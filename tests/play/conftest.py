"""Held-out Crafter start frames shared by the play tests: a Crafter world generation takes seconds, so held-out
world 0 is generated once for every test module that plays from it."""

import pytest

from system.play.start_frames import CrafterStarts
from system.run.config import load
from tests.helpers.play_run import SMOKE


@pytest.fixture(scope="session")
def crafter_starts() -> CrafterStarts:
    """The smoke config's held-out worlds 0 and 1 (and fresh worlds), 3 context frames each."""
    return CrafterStarts(load(SMOKE), context_frames=3, held_out=2)
