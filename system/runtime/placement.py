"""Where the learner ranks and the world-model service run: a placement group per GPU node.

    plan = plan_placement(learners=4, node_gpus=[8, 8], service=True)   # pure: the cluster's GPUs -> bundles
    placement = Placement.reserve(plan, timeout_s=600)                   # all groups placed, or PlacementTimeout
    learner = Learner.options(**placement.learner_options(rank)).remote(...)
    service = WorldModelService.options(**placement.service_options()).remote(...)
    placement.remove()
    runner = CrafterEnvRunner.options(**runner_options()).remote(...)   # sees no GPU

GPU clusters (`node_gpus`: the GPUs of each alive node): the ranks fill the nodes with the most GPUs first, one
GPU each, and every node used gets a STRICT_PACK placement group with one {GPU: 1, CPU: c} bundle per rank
there. With `service`, the world-model service joins rank 0's group: a {GPU: 1, CPU: 1} bundle of its own on a
spare GPU of that node, or, when the ranks take every GPU there, half of rank 0's GPU (rank 0's bundle becomes
{GPU: 1, CPU: c + 1}, holding rank 0 at 0.5 GPU and the service at 0.5). Learner and service then share a node
and its object store: the weights rank 0 publishes reach the service without crossing the network. The groups
are reserved one after the other, largest first, so a small one cannot take the node a large one needs.
CPU clusters: one PACK group of {CPU: c} bundles, one per rank, and no bundle for the service (it claims no CPU
of Ray's accounting). A cluster with fewer GPUs than ranks is refused before anything starts (PlacementError
naming runtime.learners and the GPUs there are); one that cannot place the groups in time raises
PlacementTimeout saying what was asked for. Without gang placement, a cluster with room for only some ranks
would start those, and they would wait in the rendezvous forever for the others.

Env runners see no GPU: `runner_options()` gives them CUDA_VISIBLE_DEVICES="" in their runtime env (Ray 2.60
no longer hides the GPUs from actors that ask for none). A learner placed without a GPU would see them too; it
trains on the GPUs Ray assigned it (ray.get_gpu_ids()), so on none (learners/world_model_learner.py), without
the runtime env (an actor with one starts a few seconds slower).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ray
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

NO_GPU_ENV = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}


class PlacementError(RuntimeError):
    """The cluster cannot hold what the run asks for."""


class PlacementTimeout(PlacementError):
    """The cluster could not place every rank of the group in time."""


@dataclass(frozen=True)
class Slot:
    group: int      # index of the placement group
    bundle: int     # bundle index in that group
    gpus: float     # what the actor asks for inside the bundle
    cpus: float


@dataclass(frozen=True)
class PlacementPlan:
    groups: tuple[tuple[dict, ...], ...]   # the bundles of each placement group
    strategy: str                          # STRICT_PACK (a GPU node each) or PACK (CPU)
    ranks: tuple[Slot, ...]                # where each learner rank goes
    service: Slot | None = None            # where the world-model service goes (None: anywhere)

    def describe(self) -> str:
        return "; ".join(f"group {k} ({self.strategy}): {list(bundles)}" for k, bundles in enumerate(self.groups))


def plan_placement(learners: int, node_gpus: Sequence[float] = (), service: bool = False,
                   cpus_per_learner: float = 1.0) -> PlacementPlan:
    if learners < 1:
        raise ValueError(f"runtime.learners = {learners}: a placement needs at least one rank")
    nodes = sorted((int(g) for g in node_gpus if g >= 1), reverse=True)  # whole GPUs per node, most first
    if not nodes:
        bundle = {"CPU": cpus_per_learner}
        return PlacementPlan((tuple(dict(bundle) for _ in range(learners)),), "PACK",
                             tuple(Slot(0, r, 0.0, cpus_per_learner) for r in range(learners)))
    if sum(nodes) < learners:
        raise PlacementError(f"runtime.learners = {learners} needs one GPU per rank, and the cluster has "
                             f"{sum(nodes)} (GPUs per node: {nodes}): add GPU nodes, lower runtime.learners, or "
                             "train on CPU with device=cpu")
    groups: list[list[dict]] = []
    ranks: list[Slot] = []
    left = learners
    for gpus in nodes:
        if not left:
            break
        here = min(gpus, left)
        ranks += [Slot(len(groups), b, 1.0, cpus_per_learner) for b in range(here)]
        groups.append([{"GPU": 1.0, "CPU": cpus_per_learner} for _ in range(here)])
        left -= here
    service_slot = None
    if service:
        if nodes[0] > len(groups[0]):  # a spare GPU on rank 0's node
            groups[0].append({"GPU": 1.0, "CPU": 1.0})
            service_slot = Slot(0, len(groups[0]) - 1, 1.0, 1.0)
        else:                          # share rank 0's GPU
            groups[0][0] = {"GPU": 1.0, "CPU": cpus_per_learner + 1.0}
            ranks[0] = Slot(0, 0, 0.5, cpus_per_learner)
            service_slot = Slot(0, 0, 0.5, 1.0)
    return PlacementPlan(tuple(tuple(g) for g in groups), "STRICT_PACK", tuple(ranks), service_slot)


def cluster_node_gpus() -> list[float]:
    """GPUs of every alive node of the cluster Ray is connected to."""
    return [float(node["Resources"].get("GPU", 0.0)) for node in ray.nodes() if node["Alive"]]


def runner_options(**options) -> dict:
    """Ray options of an env runner: no GPU visible (CUDA_VISIBLE_DEVICES=""), plus `options`."""
    return {**options, "runtime_env": NO_GPU_ENV}


class Placement:
    """The placement groups of a plan, reserved; `remove` frees them (and ends the actors inside)."""

    def __init__(self, plan: PlacementPlan, groups: list):
        self.plan, self.groups = plan, groups

    @classmethod
    def reserve(cls, plan: PlacementPlan, timeout_s: float = 600.0) -> Placement:
        groups = []
        for index in sorted(range(len(plan.groups)), key=lambda k: -len(plan.groups[k])):
            bundles = plan.groups[index]
            group = placement_group([dict(b) for b in bundles], strategy=plan.strategy)
            groups.append((index, group))
            try:
                ray.get(group.ready(), timeout=timeout_s)
            except GetTimeoutError:
                for _, g in groups:
                    remove_placement_group(g)
                raise PlacementTimeout(cls._timeout_message(plan, bundles, timeout_s)) from None
        return cls(plan, [g for _, g in sorted(groups, key=lambda pair: pair[0])])

    @staticmethod
    def _timeout_message(plan: PlacementPlan, bundles, timeout_s: float) -> str:
        if len(set(map(str, bundles))) == 1 and len(plan.groups) == 1 and plan.service is None:
            asked = f"{len(bundles)} learner ranks of {bundles[0]} each"
        else:
            asked = f"the bundles {list(bundles)} ({plan.strategy}; the whole plan: {plan.describe()})"
        return (f"the cluster could not place {asked} within {timeout_s:g} s (resources: "
                f"{ray.available_resources()}): add nodes, or lower runtime.learners")

    def _options(self, slot: Slot) -> dict:
        return {"num_cpus": slot.cpus, "num_gpus": slot.gpus, "scheduling_strategy":
                PlacementGroupSchedulingStrategy(self.groups[slot.group], placement_group_bundle_index=slot.bundle)}

    def learner_options(self, rank: int) -> dict:
        return self._options(self.plan.ranks[rank])

    def service_options(self) -> dict:
        """The service's bundle, or {} where the plan has none (CPU: Ray places it)."""
        return self._options(self.plan.service) if self.plan.service is not None else {}

    def remove(self) -> None:
        for group in self.groups:
            remove_placement_group(group)
        self.groups = []
