import pytest
import torch

from system.envs.action_space import crafter_action_space, minecraft_action_space
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.policy_head import FactoredPolicy, PolicyHead
from system.model.slow_copy import SlowCopy


def test_policy_head_has_one_output_layer_per_mtp_distance_and_factored_minecraft_components():
    space = minecraft_action_space()
    head = PolicyHead(space.components, in_dim=16, hidden=32, mtp=8)
    assert len(head.outputs) == 9
    dist = head(torch.randn(3, 5, 2, 8))
    assert dist.logits[0].shape == (3, 5, 9, 1)                   # a binary key: one logit
    assert dist.logits[space.column("camera")].shape == (3, 5, 9, 121)
    a = dist.sample(torch.Generator().manual_seed(0))
    assert a.shape == (3, 5, 9, len(space)) and dist.log_prob(a).shape == (3, 5, 9)


def test_factored_log_prob_sums_components_and_binary_is_bernoulli():
    dist = FactoredPolicy(("binary", "categorical"), [torch.tensor([[0.0]]), torch.log(torch.tensor([[0.2, 0.8]]))])
    logp = dist.log_prob(torch.tensor([[1, 1]]))
    torch.testing.assert_close(logp, torch.log(torch.tensor([0.5 * 0.8])))


def test_kl_is_exact_and_reverse_direction():
    p = FactoredPolicy(("categorical",), [torch.log(torch.tensor([[0.9, 0.1]]))])
    q = FactoredPolicy(("categorical",), [torch.log(torch.tensor([[0.5, 0.5]]))])
    expected_pq = 0.9 * torch.log(torch.tensor(0.9 / 0.5)) + 0.1 * torch.log(torch.tensor(0.1 / 0.5))
    expected_qp = 0.5 * torch.log(torch.tensor(0.5 / 0.9)) + 0.5 * torch.log(torch.tensor(0.5 / 0.1))
    torch.testing.assert_close(p.kl(q), expected_pq.reshape(1))
    torch.testing.assert_close(q.kl(p), expected_qp.reshape(1))
    b = FactoredPolicy(("binary",), [torch.tensor([[2.0]])])
    c = FactoredPolicy(("binary",), [torch.tensor([[-1.0]])])
    pb, pc = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(-1.0))
    exact = pb * torch.log(pb / pc) + (1 - pb) * torch.log((1 - pb) / (1 - pc))
    torch.testing.assert_close(b.kl(c), exact.reshape(1))


def test_heads_shapes_and_reward_head_starts_at_zero():
    heads = AgentHeads(AgentHeadsConfig(hidden=16, mtp=8, bins=255), crafter_action_space().components, 2, 8)
    h = torch.randn(4, 6, 2, 8)
    assert heads.reward(h).shape == (4, 6, 9, 255)
    assert torch.allclose(heads.reward.predict(h), torch.zeros(4, 6), atol=1e-5)
    assert heads.value.predict(h).shape == (4, 6)
    assert heads.continuation.predict(h).shape == (4, 6)
    assert AgentHeads(AgentHeadsConfig(continuation=False), crafter_action_space().components, 1, 8).continuation is None


def test_ema_copy_moves_toward_the_online_head_at_the_stated_rate_and_is_never_optimised():
    heads = AgentHeads(AgentHeadsConfig(hidden=8, value_ema_decay=0.9), crafter_action_space().components, 1, 4)
    slow_before = [p.clone() for p in heads.slow_value.module.parameters()]
    optimizer = torch.optim.SGD([p for n, p in heads.named_parameters() if not n.startswith("slow_value")], lr=0.1)
    assert not any(p.requires_grad for p in heads.slow_value.parameters())
    h = torch.randn(5, 1, 4)
    loss = heads.value(h).pow(2).mean() + heads.slow_value(h).sum() * 0  # the slow copy gives no gradient path
    loss.backward()
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(slow_before, heads.slow_value.module.parameters()))
    heads.slow_value.update(heads.value)
    for before, slow, online in zip(slow_before, heads.slow_value.module.parameters(), heads.value.parameters()):
        torch.testing.assert_close(slow, 0.9 * before + 0.1 * online)


def test_bad_head_config_names_the_key():
    with pytest.raises(ValueError, match="value_ema_decay"):
        AgentHeadsConfig(value_ema_decay=1.0)
    with pytest.raises(ValueError, match="mtp"):
        AgentHeadsConfig(mtp=-1)
    with pytest.raises(ValueError):
        SlowCopy(torch.nn.Linear(1, 1), decay=1.5)


def test_reward_sees_its_own_steps_action_and_the_policy_never_sees_the_action_it_predicts():
    """Checklist 22 and the index convention, through the real dynamics model: h_t reads a_t, never a_{t+1}."""
    from tests.helpers.dynamics import TOY_SPACE, random_actions, tiny_model

    model = tiny_model()
    heads = AgentHeads(AgentHeadsConfig(hidden=16, mtp=2, bins=31), TOY_SPACE.components, 1, 32)
    with torch.no_grad():   # a reward head with non-zero outputs, so its prediction can move at all
        for out in heads.reward.outputs:
            torch.nn.init.normal_(out.weight, std=1.0)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 5, 4, 8, generator=g)
    tau, d = torch.full((1, 5), 0.875), torch.full((1, 5), 1 / 16)
    actions = random_actions(1, 5, generator=g)
    t = 2
    changed_now = actions.clone()
    changed_now[0, t, 2] = (actions[0, t, 2] + 1) % 9          # the camera of step t
    changed_next = actions.clone()
    changed_next[0, t + 1, 2] = (actions[0, t + 1, 2] + 1) % 9  # the action the policy at h_t predicts
    with torch.no_grad():
        h = model(z, tau, d, actions).agent
        h_now = model(z, tau, d, changed_now).agent
        h_next = model(z, tau, d, changed_next).agent
        reward, reward_now, reward_next = (heads.reward.predict(x)[0, t] for x in (h, h_now, h_next))
        policy = heads.policy.act(h).logits[2][0, t]
        assert not torch.allclose(reward, reward_now, atol=1e-6)
        torch.testing.assert_close(reward_next, reward)
        torch.testing.assert_close(heads.policy.act(h_next).logits[2][0, t], policy)
