"""A data-parallel group of learner actors that survives a dead rank by being rebuilt from a checkpoint.

    group = LearnerGroup(make_learner, world_size=2, checkpoint_path=run_dir / "checkpoints" / "tokenizer.pt")
    group.start()                         # places and creates the actors, joins the group, loads the checkpoint
    group.run(lambda learners: [l.train_on.remote(x) for l, x in zip(learners, shards)])
    group.checkpoint()                    # rank 0 saves; the step survives a restart of the group

A torch.distributed process group cannot be repaired in place: when a call fails because a rank died, `run`
kills every actor of the group, creates a new group (new rendezvous port), reloads the last checkpoint and
raises GroupRestarted, so the caller redoes the steps since that checkpoint. `make_learner(rank, world_size,
options)` returns a new actor handle (learners/world_model_learner.py) started with `options`: its resources and
its bundle of the group's placement (system/runtime/placement.py).

The ranks are gang-scheduled: `start` reserves the placement (`plan`, by default one PACK group of one `bundle`
per rank, e.g. {"CPU": 1}) and waits until all of it is placed, or raises PlacementTimeout after
`placement_timeout_s` saying what it asked for. A placement reserved by the caller (`placement`: one that also
holds the world-model service, for as long as the service lives) is used as it is and kept at `stop`; a restart
then creates the new ranks in the same bundles.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from system.runtime.placement import Placement, PlacementPlan, PlacementTimeout, Slot

__all__ = ["GroupRestarted", "LearnerGroup", "PlacementTimeout"]


class GroupRestarted(RuntimeError):
    """The group was rebuilt from the last checkpoint; the steps after it are to be redone."""


class LearnerGroup:
    def __init__(self, make_learner: Callable, world_size: int, checkpoint_path: str | Path,
                 bundle: dict[str, float] | None = None, placement_timeout_s: float = 600.0,
                 plan: PlacementPlan | None = None, placement: Placement | None = None):
        self.make_learner, self.world_size = make_learner, world_size
        self.checkpoint_path = Path(checkpoint_path)
        bundle = dict(bundle or {"CPU": 1})
        self.plan = plan or PlacementPlan((tuple(dict(bundle) for _ in range(world_size)),), "PACK",
                                          tuple(Slot(0, r, bundle.get("GPU", 0.0), bundle.get("CPU", 0.0))
                                                for r in range(world_size)))
        self.placement_timeout_s = placement_timeout_s
        self.placement, self.owns_placement = placement, placement is None
        self.learners: list = []
        self.restarts = 0

    def start(self) -> int:
        """Places and creates the ranks, joins the group; returns the step it resumes from (0 without a
        checkpoint)."""
        if self.placement is None:
            self.placement = Placement.reserve(self.plan, self.placement_timeout_s)
        self.learners = [self.make_learner(rank, self.world_size, self.placement.learner_options(rank))
                         for rank in range(self.world_size)]
        addr, port = ray.get(self.learners[0].address.remote())
        ray.get([learner.join_group.remote(addr, port) for learner in self.learners])
        if self.checkpoint_path.exists():
            return ray.get([learner.load.remote(str(self.checkpoint_path)) for learner in self.learners])[0]
        return 0

    def checkpoint(self) -> int:
        """Rank 0 writes the checkpoint (the replicas are equal); returns the step saved."""
        return ray.get(self.learners[0].save.remote(str(self.checkpoint_path)))

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
        if self.owns_placement and self.placement is not None:
            self.placement.remove()  # frees the reserved bundles for the next group or phase
            self.placement = None
