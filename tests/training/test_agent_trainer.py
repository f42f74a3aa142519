import torch

from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.objectives.shortcut import ShortcutConfig
from system.training.agent_trainer import AgentBatch, AgentTrainConfig, AgentTrainer
from tests.helpers.dynamics import TOY_SPACE, one_thread, random_actions, tiny_model  # noqa: F401


def batch(b, t, g, task=-1):
    rewards = (torch.rand(b, t, generator=g) < 0.3).float()
    terminals = torch.zeros(b, t, dtype=torch.bool)
    terminals[0, -1] = True
    return AgentBatch(torch.randn(b, t, 4, 8, generator=g), random_actions(b, t, generator=g), rewards, terminals,
                      torch.full((b,), task))


def make(seed=0):
    model = tiny_model(seed=seed)
    heads = AgentHeads(AgentHeadsConfig(hidden=16, mtp=2, bins=31), TOY_SPACE.components, 1, 32)
    cfg = AgentTrainConfig(steps=20, batch_size=4, seq_len=6, lr=3e-3, warmup_steps=1)
    return model, heads, AgentTrainer(model, heads, cfg, ShortcutConfig(bootstrap_warmup=0), seed=seed)


def test_all_four_terms_train_and_are_normalised_each_by_its_own_rms():
    model, heads, trainer = make()
    g = torch.Generator().manual_seed(0)
    uniform, relevant = batch(2, 6, g), batch(2, 6, g, task=1)
    before = {n: p.clone() for n, p in heads.named_parameters()}
    first = trainer.train_step(uniform, relevant)
    assert {"flow_mse", "bc_nll", "reward_ce", "continuation_bce"} <= set(first)
    assert all(int(norm.updates) == 1 for norm in trainer.norms.values())
    for _ in range(15):
        last = trainer.train_step(uniform, relevant)
    assert last["bc_nll"] < first["bc_nll"] and last["reward_ce"] < first["reward_ce"]
    changed = {n for n, p in heads.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("policy.") for n in changed) and any(n.startswith("reward.") for n in changed)
    assert not any(n.startswith(("value.", "slow_value.")) for n in changed)   # no value loss in phase 2


def test_the_heads_read_features_standardised_by_the_relevant_rows_statistics():
    """Phase 2 observes h of the relevant rows (the rows the heads train on) once per step, before the heads read
    it: after one step the statistics are those of that step's relevant features."""
    model, heads, trainer = make()
    g = torch.Generator().manual_seed(3)
    uniform, relevant = batch(2, 6, g), batch(2, 6, g)
    draws = trainer.draws(uniform, relevant)
    with torch.no_grad():
        from system.training.agent_trainer import agent_features
        h = agent_features(model.train(), relevant.z1, relevant.actions, relevant.task, trainer.cfg.context_noise,
                           noise=draws.relevant_noise)
    trainer.train_step(uniform, relevant)
    mean, var = heads.features.moments()
    assert int(heads.features.updates) == 1
    torch.testing.assert_close(mean, h.flatten(-2).reshape(-1, 32).mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(var, h.flatten(-2).reshape(-1, 32).var(0, unbiased=False), atol=1e-4, rtol=1e-3)
    trainer.train_step(uniform, relevant)
    assert int(heads.features.updates) == 2


def test_the_task_never_changes_the_latent_prediction():
    model = tiny_model().eval()
    g = torch.Generator().manual_seed(1)
    z, a = torch.randn(2, 5, 4, 8, generator=g), random_actions(2, 5, generator=g)
    tau, d = torch.full((2, 5), 0.5), torch.full((2, 5), 0.25)
    with torch.no_grad():
        with_task = model(z, tau, d, a, task=torch.tensor([0, 2]))
        without = model(z, tau, d, a, task=torch.tensor([-1, -1]))
    torch.testing.assert_close(with_task.z1, without.z1)
    assert not torch.allclose(with_task.agent, without.agent)


def test_state_dict_round_trip_resumes_exactly():
    _, _, trainer = make(0)
    g = torch.Generator().manual_seed(2)
    trainer.train_step(batch(2, 6, g), batch(2, 6, g))
    state = trainer.state_dict()
    _, heads, other = make(1)
    other.load_state_dict(state)
    assert other.step == 1
    for a, b in zip(trainer.heads.state_dict().values(), heads.state_dict().values()):
        assert torch.equal(a, b)
    assert all(int(n.updates) == 1 for n in other.norms.values())


def test_mixture_split_keeps_both_halves():
    assert AgentTrainConfig(batch_size=16).split() == (8, 8)
    assert AgentTrainConfig(batch_size=2, relevant_fraction=0.9).split() == (1, 1)
