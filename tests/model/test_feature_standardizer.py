import copy

import torch

from system.envs.action_space import crafter_action_space
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.feature_standardizer import FeatureStandardizer


def test_identity_before_any_observation_then_the_observed_batch_comes_out_centred_and_unit_variance():
    norm = FeatureStandardizer(3)
    g = torch.Generator().manual_seed(0)
    h = torch.tensor([5.0, -2.0, 0.5]) + torch.randn(200, 3, generator=g) * torch.tensor([0.1, 2.0, 1.0])
    torch.testing.assert_close(norm(h), h)
    norm.observe(h)
    out = norm(h)
    torch.testing.assert_close(out.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False), torch.ones(3), atol=1e-2, rtol=0)


def test_moments_are_bias_corrected_moving_averages_of_the_batch_mean_and_variance():
    norm = FeatureStandardizer(2, decay=0.5, eps=0.0)
    a = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    b = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    norm.observe(a)
    norm.observe(b)
    weight_a, weight_b = 0.5 * 0.5 / 0.75, 0.5 / 0.75       # (1 - d) d / (1 - d^2), (1 - d) / (1 - d^2)
    got_mean, got_var = norm.moments()
    torch.testing.assert_close(got_mean, weight_a * a.mean(0) + weight_b * b.mean(0))
    torch.testing.assert_close(got_var, weight_a * a.var(0, unbiased=False) + weight_b * b.var(0, unbiased=False))


def test_the_variance_survives_a_shared_vector_a_thousand_times_its_spread():
    norm = FeatureStandardizer(4)
    g = torch.Generator().manual_seed(2)
    spread = torch.randn(64, 4, generator=g) * 1e-3
    norm.observe(1.0 + spread)     # E[h^2] - E[h]^2 in float32 would lose most digits here
    torch.testing.assert_close(norm.moments()[1], spread.var(0, unbiased=False), rtol=1e-3, atol=0)


def test_reduce_value_makes_the_mean_then_the_variance_about_it_the_groups():
    """A rank holding `a` while another holds `b` (equal rows): the reduction (the mean over ranks) gives it the
    mean over both of the batch means, then of the variances about that mean: the statistics of a and b together."""
    a = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    b = torch.tensor([[4.0, 0.0], [6.0, 8.0]])
    both = FeatureStandardizer(2)
    both.observe(torch.cat([a, b]))
    mean = torch.cat([a, b]).mean(0)
    other_rank = iter([b.mean(0), (b - mean).square().mean(0)])   # what b's rank contributes, call by call
    rank = FeatureStandardizer(2)
    rank.reduce_value = lambda value: (value + next(other_rank)) / 2
    rank.observe(a)
    torch.testing.assert_close(rank.moments()[0], both.moments()[0])
    torch.testing.assert_close(rank.moments()[1], both.moments()[1])


def test_every_head_reads_the_one_standardizer_that_the_state_dict_carries_and_a_copy_keeps_its_own():
    heads = AgentHeads(AgentHeadsConfig(hidden=8, mtp=1, bins=11), crafter_action_space().components, 1, 4)
    for out in [*heads.reward.outputs, heads.value.net[-1]]:   # zero-initialised outputs would never move
        torch.nn.init.normal_(out.weight)
    g = torch.Generator().manual_seed(1)
    h = torch.randn(6, 1, 4, generator=g) + 3.0
    before = (heads.policy.act(h).logits[0], heads.reward.predict(h), heads.value(h), heads.continuation(h))
    prior = copy.deepcopy(heads.policy)
    heads.features.observe(h)
    after = (heads.policy.act(h).logits[0], heads.reward.predict(h), heads.value(h), heads.continuation(h))
    assert all(not torch.allclose(x, y) for x, y in zip(before, after))
    assert heads.policy.inputs is heads.features and heads.continuation.inputs is heads.features
    torch.testing.assert_close(prior.act(h).logits[0], before[0])    # the frozen prior keeps its statistics
    heads.slow_value.update(heads.value)                               # the slow copy takes them over
    torch.testing.assert_close(heads.slow_value.module.inputs.moments()[0], heads.features.moments()[0])
    other = AgentHeads(AgentHeadsConfig(hidden=8, mtp=1, bins=11), crafter_action_space().components, 1, 4)
    other.load_state_dict(heads.state_dict())
    torch.testing.assert_close(other.reward.predict(h), after[1])
    torch.testing.assert_close(other.features.moments()[0], heads.features.moments()[0])
