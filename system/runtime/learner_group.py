"""A data-parallel group of learner actors that survives a dead rank by being rebuilt from a checkpoint.

    group = LearnerGroup(make_learner, world_size=2, checkpoint_path=run_dir / "checkpoints" / "tokenizer_dp.pt")
    group.start()                         # creates the actors, joins the process group, loads the checkpoint
    group.run(lambda learners: [l.train_on.remote(x) for l, x in zip(learners, shards)])
    group.checkpoint()                    # rank 0 saves; the step survives a restart of the group

A torch.distributed process group cannot be repaired in place: when a call fails because a rank died, `run`
kills every actor of the group, creates a new group (new rendezvous port), reloads the last checkpoint and
raises GroupRestarted, so the caller redoes the steps since that checkpoint. `make_learner(rank, world_size,
placement)` returns a new actor handle (learners/world_model_learner.py), started with `placement` as its
scheduling strategy: bundle `rank` of the group's placement group.

The ranks are gang-scheduled: `start` reserves one bundle per rank (`bundle`, e.g. {"CPU": 1, "GPU": 1}) in a
placement group with strategy PACK (the ranks on as few nodes as possible, where the collectives are fastest)
and waits until all of them are placed, or raises PlacementTimeout after `placement_timeout_s` saying what it
asked for. Without it, a cluster with room for only some ranks would start those, and they would wait in the
rendezvous forever for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


class GroupRestarted(RuntimeError):
    """The group was rebuilt from the last checkpoint; the steps after it are to be redone."""


class PlacementTimeout(RuntimeError):
    """The cluster could not place every rank of the group in time."""


class LearnerGroup:
    def __init__(self, make_learner: Callable, world_size: int, checkpoint_path: str | Path,
                 bundle: dict[str, float] | None = None, placement_timeout_s: float = 600.0):
        self.make_learner, self.world_size = make_learner, world_size
        self.checkpoint_path = Path(checkpoint_path)
        self.bundle = dict(bundle or {"CPU": 1})
        self.placement_timeout_s = placement_timeout_s
        self.placement = None
        self.learners: list = []
        self.restarts = 0

    def _place(self) -> None:
        self.placement = placement_group([dict(self.bundle)] * self.world_size, strategy="PACK")
        try:
            ray.get(self.placement.ready(), timeout=self.placement_timeout_s)
        except GetTimeoutError:
            remove_placement_group(self.placement)
            self.placement = None
            raise PlacementTimeout(f"the cluster could not place {self.world_size} learner ranks of {self.bundle} "
                                   f"each within {self.placement_timeout_s:g} s (resources: "
                                   f"{ray.available_resources()}): add nodes, or lower runtime.learners") from None

    def start(self) -> int:
        """Places and creates the ranks, joins the group; returns the step it resumes from (0 without a
        checkpoint)."""
        self._place()
        self.learners = [self.make_learner(rank, self.world_size, PlacementGroupSchedulingStrategy(
            self.placement, placement_group_bundle_index=rank)) for rank in range(self.world_size)]
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
        if self.placement is not None:
            remove_placement_group(self.placement)  # frees the reserved bundles for the next group or phase
            self.placement = None
