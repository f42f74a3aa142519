import torch

from system.model.policy_head import FactoredPolicy
from system.objectives.pmpo import pmpo_loss


def hand_batch():
    log_prob = torch.tensor([-1.0, -2.0, -3.0, -4.0, -5.0], requires_grad=True)
    advantage = torch.tensor([0.5, 100.0, -0.1, -7.0, 0.0])   # magnitudes must not matter; 0 counts as positive
    kl = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    return log_prob, advantage, kl


def test_pmpo_by_hand_signs_group_means_alpha_beta():
    log_prob, advantage, kl = hand_batch()
    alpha, beta = 0.3, 0.7
    loss, _ = pmpo_loss(log_prob, advantage, kl, alpha=alpha, beta=beta)
    positive = (-1.0 - 2.0 - 5.0) / 3
    negative = (-3.0 - 4.0) / 2
    expected = (1 - alpha) * negative - alpha * positive + beta * kl.mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()   # each sign group by its own size: d/dlogp = -alpha/3 on D+, (1-alpha)/2 on D-
    torch.testing.assert_close(log_prob.grad, torch.tensor([-alpha / 3, -alpha / 3, (1 - alpha) / 2,
                                                            (1 - alpha) / 2, -alpha / 3]))


def test_only_the_sign_of_the_advantage_enters():
    log_prob, advantage, kl = hand_batch()
    a, _ = pmpo_loss(log_prob, advantage, kl)
    b, _ = pmpo_loss(log_prob, torch.sign(advantage) + (advantage == 0).float(), kl)
    torch.testing.assert_close(a, b)


def test_weights_drop_dead_steps_from_groups_and_kl():
    log_prob, advantage, kl = hand_batch()
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    loss, _ = pmpo_loss(log_prob, advantage, kl, weights, alpha=0.5, beta=0.3)
    expected = 0.5 * -3.0 - 0.5 * (-1.5) + 0.3 * (0.6 / 3)
    torch.testing.assert_close(loss, torch.tensor(expected))


def test_the_kl_term_pulls_the_policy_toward_the_prior_in_the_reverse_direction():
    logits = torch.tensor([[2.0, 0.0, -2.0]], requires_grad=True)
    prior = FactoredPolicy(("categorical",), [torch.tensor([[0.0, 0.0, 0.0]])])
    policy = FactoredPolicy(("categorical",), [logits])
    kl = policy.kl(prior)
    p = torch.softmax(logits.detach(), -1)
    torch.testing.assert_close(kl, (p * (p.log() - torch.log(torch.tensor(1 / 3)))).sum(-1))
    loss, _ = pmpo_loss(torch.zeros(1), torch.ones(1), kl, beta=0.3)
    loss.backward()
    assert logits.grad[0, 0] > 0 and logits.grad[0, 2] < 0   # gradient descent flattens toward the uniform prior
