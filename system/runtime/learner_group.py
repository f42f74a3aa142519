"""A data-parallel group of learner actors that survives a dead rank by being rebuilt from a checkpoint.

    group = LearnerGroup(make_learner, world_size=2, checkpoint_path=run_dir / "checkpoints" / "tokenizer_dp.pt")
    group.start()                         # creates the actors, joins the process group, loads the checkpoint
    group.run(lambda learners: [l.train_on.remote(x) for l, x in zip(learners, shards)])
    group.checkpoint()                    # rank 0 saves; the step survives a restart of the group

A torch.distributed process group cannot be repaired in place: when a call fails because a rank died, `run`
kills every actor of the group, creates a new group (new rendezvous port), reloads the last checkpoint and
raises GroupRestarted, so the caller redoes the steps since that checkpoint. `make_learner(rank, world_size)`
returns a new actor handle (learners/world_model_learner.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ray
from ray.exceptions import ActorUnavailableError, RayActorError


class GroupRestarted(RuntimeError):
    """The group was rebuilt from the last checkpoint; the steps after it are to be redone."""


class LearnerGroup:
    def __init__(self, make_learner: Callable, world_size: int, checkpoint_path: str | Path):
        self.make_learner, self.world_size = make_learner, world_size
        self.checkpoint_path = Path(checkpoint_path)
        self.learners: list = []
        self.restarts = 0

    def start(self) -> int:
        """Creates and joins the group; returns the step it resumes from (0 without a checkpoint)."""
        self.learners = [self.make_learner(rank, self.world_size) for rank in range(self.world_size)]
        addr, port = ray.get(self.learners[0].address.remote())
        ray.get([learner.join_group.remote(addr, port) for learner in self.learners])
        if self.checkpoint_path.exists():
            return ray.get([learner.load.remote(str(self.checkpoint_path)) for learner in self.learners])[0]
        return 0

    def checkpoint(self, extra: dict | None = None) -> int:
        return ray.get(self.learners[0].save.remote(str(self.checkpoint_path), extra))

    def run(self, submit: Callable[[list], list]):
        refs = submit(self.learners)
        try:
            pending = list(refs)
            while pending:  # not ray.get(refs): a survivor blocked in a collective would hide the dead rank
                ready, pending = ray.wait(pending, num_returns=1)
                ray.get(ready[0])
            return ray.get(refs)
        except (ActorUnavailableError, RayActorError) as error:
            self.stop()  # the survivors hang in a collective with the dead rank: end them too
            self.restarts += 1
            step = self.start()
            raise GroupRestarted(f"a rank died ({type(error).__name__}); group rebuilt at step {step}") from error

    def stop(self) -> None:
        for learner in self.learners:
            ray.kill(learner, no_restart=True)
        self.learners = []
