import torch

from system.model.policy_head import FactoredPolicy
from system.model.scalar_heads import RewardHead
from system.objectives.agent_losses import behaviour_cloning_loss, continuation_loss, reward_loss
from system.model.scalar_heads import ContinuationHead


def one_hot_policy(classes: torch.Tensor, n: int, confident: float = 20.0) -> FactoredPolicy:
    return FactoredPolicy(("categorical",), [torch.nn.functional.one_hot(classes, n).float() * confident])


def test_bc_loss_is_zero_only_when_each_distance_predicts_its_own_future_action():
    b, t, distances, n = 1, 6, 3, 8
    actions = torch.tensor([[[1], [2], [3], [4], [5], [6]]])
    terminals = torch.zeros(b, t, dtype=torch.bool)
    steps = torch.arange(t)[:, None] + 1 + torch.arange(distances)[None]
    right = one_hot_policy((steps.clamp(max=t - 1) + 1)[None], n)    # a_s = s + 1
    loss, m = behaviour_cloning_loss(right, actions, terminals)
    assert loss < 1e-6 and m["bc_accuracy"] == 1.0
    shifted = one_hot_policy(steps.clamp(max=t - 1)[None], n)       # off by one step
    assert behaviour_cloning_loss(shifted, actions, terminals)[0] > 10


def test_bc_loss_ignores_unlabeled_and_post_terminal_targets():
    actions = torch.tensor([[[1], [2], [-1], [4]]])
    terminals = torch.tensor([[False, False, False, False]])
    policy = one_hot_policy(torch.tensor([[[2], [0], [4], [0]]]), 6)   # one distance; h_1 predicts a_2 = -1
    assert behaviour_cloning_loss(policy, actions, terminals)[0] < 1e-6
    terminals = torch.tensor([[False, True, False, False]])           # frame 1 ends the episode
    wrong_after_end = one_hot_policy(torch.tensor([[[2], [5], [0], [0]]]), 6)
    loss, _ = behaviour_cloning_loss(wrong_after_end, torch.tensor([[[1], [2], [0], [0]]]), terminals)
    assert loss < 1e-6                                                # h_1 (terminal) has no target


def test_reward_loss_uses_distance_zero_for_the_current_step():
    head = RewardHead(in_dim=4, hidden=8, mtp=0)
    with torch.no_grad():
        head.outputs[0].weight.zero_()
        target = head.bins.encode(torch.tensor(1.0))
        head.outputs[0].bias.copy_(torch.log(target.clamp_min(1e-9)))
    h = torch.randn(1, 3, 1, 4)
    right = reward_loss(head, h, torch.tensor([[1.0, 1.0, 1.0]]), torch.zeros(1, 3, dtype=torch.bool))[0]
    wrong = reward_loss(head, h, torch.tensor([[0.0, 0.0, 0.0]]), torch.zeros(1, 3, dtype=torch.bool))[0]
    entropy = -(target * target.clamp_min(1e-9).log()).sum()   # a two-hot target's own entropy
    assert abs(float(right) - float(entropy)) < 0.01 and wrong > right + 5


def test_continuation_target_is_one_minus_terminal():
    head = ContinuationHead(4, hidden=8)
    with torch.no_grad():
        head.net[-1].weight.zero_()
        head.net[-1].bias.fill_(10.0)
    h = torch.randn(1, 2, 1, 4)
    alive = continuation_loss(head, h, torch.zeros(1, 2, dtype=torch.bool))[0]
    dead = continuation_loss(head, h, torch.ones(1, 2, dtype=torch.bool))[0]
    assert alive < 1e-3 and dead > 5
