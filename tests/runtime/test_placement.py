"""Where learner ranks and the world-model service go: the bundles a run asks for, from the cluster's GPUs
(checked without GPUs: the plan is a pure function), and env runners that see no GPU."""

import pytest

from system.run.config import load
from system.runtime import phase_learners
from system.runtime.placement import PlacementError, Slot, plan_placement, runner_options


def test_a_cpu_cluster_gets_one_pack_group_of_cpu_bundles_and_no_service_bundle():
    plan = plan_placement(2, [0.0, 0.0], service=True)
    assert plan.strategy == "PACK" and plan.groups == (({"CPU": 1.0}, {"CPU": 1.0}),)
    assert plan.ranks == (Slot(0, 0, 0.0, 1.0), Slot(0, 1, 0.0, 1.0)) and plan.service is None


def test_each_gpu_node_gets_a_strict_pack_group_and_the_service_goes_beside_rank_0():
    plan = plan_placement(10, [4, 8, 0], service=True)  # the 8-GPU node first: the ranks on as few nodes as possible
    assert plan.strategy == "STRICT_PACK"
    assert plan.groups[1] == tuple([{"GPU": 1.0, "CPU": 1.0}] * 2) and len(plan.groups[0]) == 8
    assert [(s.group, s.bundle) for s in plan.ranks] == [(0, b) for b in range(8)] + [(1, b) for b in range(2)]
    assert [s.gpus for s in plan.ranks] == [0.5] + [1.0] * 9
    # rank 0's node has no spare GPU (the second node has): the service still goes beside rank 0, on half its GPU
    assert plan.service == Slot(0, 0, 0.5, 1.0) and plan.groups[0][0] == {"GPU": 1.0, "CPU": 2.0}
    assert plan.groups[0][1:] == tuple([{"GPU": 1.0, "CPU": 1.0}] * 7)
    spare = plan_placement(2, [8], service=True)
    assert spare.groups == (tuple([{"GPU": 1.0, "CPU": 1.0}] * 3),) and spare.service == Slot(0, 2, 1.0, 1.0)
    assert all(s.gpus == 1.0 for s in spare.ranks)


def test_one_gpu_is_shared_by_rank_0_and_the_service():
    plan = plan_placement(1, [1], service=True)
    assert plan.groups == (({"GPU": 1.0, "CPU": 2.0},),)
    assert plan.ranks == (Slot(0, 0, 0.5, 1.0),) and plan.service == Slot(0, 0, 0.5, 1.0)
    assert plan_placement(1, [1]).ranks == (Slot(0, 0, 1.0, 1.0),)  # no service: the whole GPU


def test_fewer_gpus_than_ranks_is_refused_naming_what_was_asked():
    with pytest.raises(PlacementError, match=r"runtime.learners = 4 needs one GPU per rank, and the cluster has 2 "
                                             r"\(GPUs per node: \[1, 1\]\)"):
        plan_placement(4, [1, 1, 0.5])


def test_device_decides_whether_learners_take_gpus(monkeypatch):
    monkeypatch.setattr(phase_learners, "cluster_node_gpus", lambda: [2.0])
    args = ["--config", "configs/smoke.yaml", "runtime.learners=2", "tokenizer.train.batch_size=12",
            "dynamics.train.schedule.long_batch_size=2"]
    assert phase_learners.learner_plan(load([*args, "device=auto"])).strategy == "STRICT_PACK"
    assert phase_learners.learner_plan(load([*args, "device=cpu"])).strategy == "PACK"
    monkeypatch.setattr(phase_learners, "cluster_node_gpus", lambda: [0.0])
    with pytest.raises(PlacementError, match="device=cuda with runtime.learners = 2, but no node"):
        phase_learners.learner_plan(load([*args, "device=cuda"]))


def test_env_runners_see_no_gpu():
    assert runner_options(max_restarts=-1) == {"max_restarts": -1,
                                               "runtime_env": {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}}
